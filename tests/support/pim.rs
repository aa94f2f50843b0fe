//! Calendar data shared by the contacts-and-calendars tests.

/// Weekly on Mondays from 3 March 2025, ten times, 09:00 Berlin; 17 March
/// cancelled (EXDATE), 24 March moved to 11:00 with another subject
/// (RECURRENCE-ID override).
pub const SERIES: &str = "BEGIN:VEVENT\r\nUID:weekly-1\r\nDTSTAMP:20250101T000000Z\r\n\
DTSTART;TZID=Europe/Berlin:20250303T090000\r\nDTEND;TZID=Europe/Berlin:20250303T093000\r\n\
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10\r\nEXDATE;TZID=Europe/Berlin:20250317T090000\r\n\
SUMMARY:Standup\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:weekly-1\r\nDTSTAMP:20250101T000000Z\r\n\
RECURRENCE-ID;TZID=Europe/Berlin:20250324T090000\r\n\
DTSTART;TZID=Europe/Berlin:20250324T110000\r\nDTEND;TZID=Europe/Berlin:20250324T113000\r\n\
SUMMARY:Standup (moved)\r\nEND:VEVENT\r\n";
