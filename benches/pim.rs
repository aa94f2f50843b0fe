//! Contacts and calendars: what a Google Takeout export costs to turn into
//! Graph requests. A 10,000-event calendar (2,000 of them recurring, some
//! with overrides and EXDATEs, a few with rules Graph cannot express) is
//! split by UID, parsed and turned into event JSON; a 5,000-card .vcf is
//! split, parsed and turned into contact JSON.

use criterion::{Criterion, criterion_group, criterion_main};
use cutover::target::graph::pim_json;
use cutover::transform::{contact, event};

/// A Google-style calendar export: one VCALENDAR, `n` VEVENTs, every fifth
/// one recurring in one of the shapes real calendars hold.
fn calendar(n: usize) -> String {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut ics = String::from(
        "BEGIN:VCALENDAR\r\nPRODID:-//Google Inc//Google Calendar 70.9054//EN\r\nVERSION:2.0\r\n\
         CALSCALE:GREGORIAN\r\nMETHOD:PUBLISH\r\nX-WR-TIMEZONE:Europe/Berlin\r\n",
    );
    let rules = [
        "FREQ=WEEKLY;BYDAY=MO,WE",
        "FREQ=DAILY;COUNT=30",
        "FREQ=MONTHLY;BYDAY=-1FR",
        "FREQ=YEARLY;BYMONTH=3;BYDAY=3SU",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=2,-1;COUNT=40",
    ];
    for i in 0..n {
        let day = 1 + rng.u32(0..28);
        let month = 1 + rng.u32(0..12);
        let hour = 7 + rng.u32(0..11);
        ics.push_str(&format!(
            "BEGIN:VEVENT\r\nDTSTART;TZID=Europe/Berlin:2025{month:02}{day:02}T{hour:02}0000\r\n\
             DTEND;TZID=Europe/Berlin:2025{month:02}{day:02}T{hour:02}4500\r\n\
             DTSTAMP:20251101T120000Z\r\nUID:bench-{i}@google.com\r\n\
             SUMMARY:Event {i}\r\nDESCRIPTION:Agenda for event {i}\\, see the shared notes.\r\n\
             LOCATION:Room {}\r\nORGANIZER;CN=Ann:mailto:ann@example.com\r\n\
             ATTENDEE;CN=Bob;PARTSTAT=ACCEPTED:mailto:bob@example.com\r\n\
             ATTENDEE;CN=Carol;PARTSTAT=NEEDS-ACTION;ROLE=OPT-PARTICIPANT:mailto:carol@example.com\r\n",
            i % 40
        ));
        let recurring = i % 5 == 0;
        if recurring {
            ics.push_str(&format!("RRULE:{}\r\n", rules[(i / 5) % rules.len()]));
            if i % 10 == 0 {
                ics.push_str(&format!(
                    "EXDATE;TZID=Europe/Berlin:2026{month:02}{day:02}T{hour:02}0000\r\n"
                ));
            }
        }
        ics.push_str("BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT10M\r\nEND:VALARM\r\nEND:VEVENT\r\n");
        if recurring && i % 15 == 0 {
            // An override moving one occurrence an hour later.
            ics.push_str(&format!(
                "BEGIN:VEVENT\r\nDTSTART;TZID=Europe/Berlin:2025{month:02}{day:02}T{:02}0000\r\n\
                 DTEND;TZID=Europe/Berlin:2025{month:02}{day:02}T{:02}4500\r\n\
                 RECURRENCE-ID;TZID=Europe/Berlin:2025{month:02}{day:02}T{hour:02}0000\r\n\
                 UID:bench-{i}@google.com\r\nSUMMARY:Event {i} (moved)\r\nEND:VEVENT\r\n",
                hour + 1,
                hour + 1
            ));
        }
    }
    ics.push_str("END:VCALENDAR\r\n");
    ics
}

/// A Google Contacts export: `n` vCard 3.0 cards.
fn address_book(n: usize) -> String {
    let mut vcf = String::new();
    for i in 0..n {
        vcf.push_str(&format!(
            "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Person {i} Example\r\nN:Example;Person {i};;;\r\n\
             EMAIL;TYPE=INTERNET;TYPE=HOME:person{i}@example.com\r\n\
             EMAIL;TYPE=INTERNET;TYPE=WORK:p{i}@work.example\r\n\
             TEL;TYPE=CELL:+49 170 {i:07}\r\nTEL;TYPE=WORK:+49 30 {i:07}\r\n\
             ADR;TYPE=HOME:;;Street {i};Berlin;;10115;Germany\r\nORG:Company {};Sales\r\n\
             TITLE:Manager\r\nBDAY:1980-{:02}-{:02}\r\nNOTE:Met at event {i}.\r\n\
             CATEGORIES:myContacts,Friends\r\nEND:VCARD\r\n",
            i % 100,
            1 + i % 12,
            1 + i % 28
        ));
    }
    vcf
}

fn bench(c: &mut Criterion) {
    let ics = calendar(10_000);
    let vcf = address_book(5_000);
    let mut group = c.benchmark_group("pim");
    group.sample_size(10);
    group.bench_function("split + events JSON, 10k events (2k recurring)", |b| {
        b.iter(|| {
            let (objects, problems) = event::split_calendar_in(std::hint::black_box(&ics), "Europe/Berlin");
            assert!(problems.is_empty());
            objects
                .iter()
                .map(|o| pim_json::event_json(&o.event).to_string().len())
                .sum::<usize>()
        })
    });
    group.bench_function("split + contacts JSON, 5k cards", |b| {
        b.iter(|| {
            let (objects, problems) = contact::split_vcards(std::hint::black_box(&vcf));
            assert!(problems.is_empty());
            objects
                .iter()
                .map(|o| pim_json::contact_json(&o.contact).0.to_string().len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
