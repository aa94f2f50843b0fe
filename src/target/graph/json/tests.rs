//! The MIME → JSON conversion on hand-made messages: addresses, dates,
//! threading, charsets, attachments in and out of the request, the stamp.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::*;

fn build_value(raw: &str, flags: &str, internal_date: i64) -> (Value, Vec<Attachment>) {
    let built = build(raw.as_bytes(), &Flags::from_wire(flags), internal_date).unwrap();
    (serde_json::from_slice(&built.request).unwrap(), built.deferred)
}

fn prop<'a>(v: &'a Value, id: &str) -> Option<&'a str> {
    v["singleValueExtendedProperties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .and_then(|p| p["value"].as_str())
}

const ALTERNATIVE: &str = "Return-Path: <a@example.com>\r\n\
Received: from mx.example.com by mx2.example.com; Tue, 30 Apr 2019 10:00:00 +0000\r\n\
From: \"Ann Example\" <ann@example.com>\r\n\
Sender: list@example.com\r\n\
To: Bob <bob@example.com>, carol@example.com\r\n\
Cc: team: dan@example.com, erin@example.com;\r\n\
Reply-To: replies@example.com\r\n\
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n\
Date: Tue, 30 Apr 2019 12:00:00 +0200\r\n\
Message-ID: <abc.123@example.com>\r\n\
In-Reply-To: <parent@example.com>\r\n\
References: <root@example.com>\r\n <parent@example.com>\r\n\
X-Priority: 1 (Highest)\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hello plain\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Hello <b>html</b></p>\r\n\
--b1--\r\n";

#[test]
fn alternative_message_keeps_html_addresses_dates_and_threading() {
    let (v, deferred) = build_value(ALTERNATIVE, "\\Seen \\Flagged Work $Forwarded $Label1", 1_556_704_800);
    assert!(deferred.is_empty());
    assert_eq!(v["internetMessageId"], "<abc.123@example.com>");
    assert_eq!(v["subject"], "Grüße");
    assert_eq!(v["body"]["contentType"], "html");
    assert!(v["body"]["content"].as_str().unwrap().contains("<b>html</b>"));
    assert_eq!(v["from"]["emailAddress"]["address"], "ann@example.com");
    assert_eq!(v["from"]["emailAddress"]["name"], "Ann Example");
    assert_eq!(v["sender"]["emailAddress"]["address"], "list@example.com");
    let to: Vec<&str> = v["toRecipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["emailAddress"]["address"].as_str().unwrap())
        .collect();
    assert_eq!(to, ["bob@example.com", "carol@example.com"]);
    let cc: Vec<&str> = v["ccRecipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["emailAddress"]["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        cc,
        ["dan@example.com", "erin@example.com"],
        "group members are flattened"
    );
    assert_eq!(v["replyTo"][0]["emailAddress"]["address"], "replies@example.com");
    assert_eq!(v["importance"], "high");
    assert_eq!(v["isRead"], true);
    assert_eq!(v["flag"]["flagStatus"], "flagged");
    assert_eq!(v["categories"], serde_json::json!(["Work"]));
    // Read, never unsent; received = INTERNALDATE, sent = Date header.
    assert_eq!(prop(&v, "Integer 0x0E07"), Some("1"));
    assert_eq!(prop(&v, "SystemTime 0x0E06"), Some("2019-05-01T10:00:00Z"));
    assert_eq!(prop(&v, "SystemTime 0x0039"), Some("2019-04-30T10:00:00Z"));
    assert_eq!(prop(&v, "String 0x1042"), Some("<parent@example.com>"));
    assert_eq!(
        prop(&v, "String 0x1039"),
        Some("<root@example.com> <parent@example.com>")
    );
    let headers = prop(&v, "String 0x007D").unwrap();
    assert!(
        headers.starts_with("Return-Path: <a@example.com>\r\nReceived: from mx.example.com"),
        "{headers}"
    );
    assert!(headers.ends_with("boundary=\"b1\"\r\n\r\n"), "{headers}");
    assert!(!headers.contains("Hello plain"));
    // Dates Graph ignores on creation are never relied on.
    assert!(v.get("receivedDateTime").is_none() && v.get("sentDateTime").is_none());
}

#[test]
fn unread_plain_text_without_message_id_or_date() {
    let raw = "From: a@example.com\r\nSubject: no id\r\n\r\nJust text.\r\n";
    let (v, _) = build_value(raw, "", 1_600_000_000);
    assert!(v.get("internetMessageId").is_none());
    assert_eq!(v["body"]["contentType"], "text");
    assert_eq!(v["body"]["content"].as_str().unwrap().trim_end(), "Just text.");
    assert_eq!(v["isRead"], false);
    assert!(v.get("flag").is_none());
    assert_eq!(v["importance"], "normal");
    assert_eq!(prop(&v, "Integer 0x0E07"), Some("0"));
    // Without a Date header the submit time falls back to INTERNALDATE.
    assert_eq!(prop(&v, "SystemTime 0x0E06"), Some("2020-09-13T12:26:40Z"));
    assert_eq!(prop(&v, "SystemTime 0x0039"), Some("2020-09-13T12:26:40Z"));
    assert_eq!(prop(&v, "String 0x1042"), None);
}

#[test]
fn non_utf8_charsets_are_decoded() {
    let mut raw = b"From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.com>\r\nSubject: =?ISO-8859-1?Q?caf=E9?=\r\nMessage-ID: x@y\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".to_vec();
    raw.extend_from_slice(b"d\xe9j\xe0 vu\r\n");
    let built = build(&raw, &Flags::default(), 1).unwrap();
    let v: Value = serde_json::from_slice(&built.request).unwrap();
    assert_eq!(v["subject"], "café");
    assert_eq!(v["from"]["emailAddress"]["name"], "André");
    assert!(v["body"]["content"].as_str().unwrap().contains("déjà vu"));
    assert_eq!(v["internetMessageId"], "<x@y>", "brackets are added");
}

#[test]
fn raw_latin1_header_bytes_survive_in_the_header_property() {
    let raw = b"From: a@example.com\r\nSubject: caf\xe9\r\n\r\nbody\r\n";
    let built = build(raw, &Flags::default(), 1).unwrap();
    let v: Value = serde_json::from_slice(&built.request).unwrap();
    let headers = prop(&v, "String 0x007D").unwrap();
    assert!(headers.contains("Subject: café"), "{headers}");
    assert!(!headers.contains('\u{FFFD}'));
}

fn with_attachments(parts: &[(&str, &str, &[u8])]) -> String {
    let mut raw = String::from(
        "From: a@example.com\r\nTo: b@example.com\r\nSubject: files\r\nMessage-ID: <f@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n--mix\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n",
    );
    for (name, ctype, bytes) in parts {
        raw.push_str(&format!(
            "--mix\r\nContent-Type: {ctype}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ));
        let encoded = STANDARD.encode(bytes);
        for line in encoded.as_bytes().chunks(76) {
            raw.push_str(std::str::from_utf8(line).unwrap());
            raw.push_str("\r\n");
        }
    }
    raw.push_str("--mix--\r\n");
    raw
}

#[test]
fn small_attachments_ride_in_the_request_and_large_ones_are_deferred() {
    let small = vec![7u8; 1000];
    let big = vec![9u8; 5 * 1024 * 1024];
    let middle = vec![1u8; 2 * 1024 * 1024];
    let middle2 = vec![2u8; 2 * 1024 * 1024];
    let raw = with_attachments(&[
        ("a.bin", "application/octet-stream", &small),
        ("big.pdf", "application/pdf", &big),
        ("m1.bin", "application/octet-stream", &middle),
        ("m2.bin", "application/octet-stream", &middle2),
    ]);
    let built = build(raw.as_bytes(), &Flags::default(), 1).unwrap();
    assert!(built.request.len() < REQUEST_MAX, "{}", built.request.len());
    let v: Value = serde_json::from_slice(&built.request).unwrap();
    let inline = v["attachments"].as_array().unwrap();
    // a.bin and m1.bin fit; m2.bin would push the request over 4 MiB;
    // big.pdf is over 3 MiB.
    let names: Vec<&str> = inline.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a.bin", "m1.bin"]);
    assert_eq!(inline[0]["@odata.type"], "#microsoft.graph.fileAttachment");
    assert_eq!(inline[0]["contentBytes"], STANDARD.encode(&small));
    assert_eq!(inline[0]["isInline"], false);
    let deferred: Vec<(&str, usize)> = built
        .deferred
        .iter()
        .map(|a| (a.name.as_str(), a.bytes.len()))
        .collect();
    assert_eq!(deferred, [("big.pdf", big.len()), ("m2.bin", middle2.len())]);
    assert_eq!(built.deferred[0].bytes, big, "bytes are decoded exactly");
    assert_eq!(built.deferred[0].content_type, "application/pdf");
}

#[test]
fn the_stamp_is_final_only_when_nothing_is_left_to_add() {
    let stamp = Stamp::new("u@example.com/INBOX/7/42", 1234, Some("<a@b>"));
    assert_eq!(stamp.key.len(), 32);
    assert_eq!(stamp, Stamp::new("u@example.com/INBOX/7/42", 1234, Some(" <a@b> ")));
    assert_ne!(stamp.key, Stamp::new("u@example.com/INBOX/7/43", 1234, None).key);
    // Everything in the request: the final stamp at creation.
    let small = with_attachments(&[("a.bin", "application/octet-stream", &[1u8; 100])]);
    let built = build_stamped(small.as_bytes(), &Flags::default(), 1, Some(&stamp)).unwrap();
    let v: Value = serde_json::from_slice(&built.request).unwrap();
    assert_eq!(prop(&v, KEY_PROPERTY), Some(stamp.key.as_str()));
    assert_eq!(prop(&v, SIZE_PROPERTY), Some("1234"));
    assert_eq!(prop(&v, MESSAGE_ID_PROPERTY), Some("<a@b>"));
    // An attachment to add afterwards: pending until it is there.
    let big = with_attachments(&[("big.bin", "application/octet-stream", &vec![2u8; 4 * 1024 * 1024])]);
    let built = build_stamped(big.as_bytes(), &Flags::default(), 1, Some(&stamp)).unwrap();
    assert_eq!(built.deferred.len(), 1);
    let v: Value = serde_json::from_slice(&built.request).unwrap();
    assert_eq!(prop(&v, KEY_PROPERTY), Some(Stamp::pending(&stamp.key).as_str()));
    // No Message-ID at the source: none recorded.
    let none = Stamp::new("k", 1, None);
    assert!(none.properties().iter().all(|p| p.id != MESSAGE_ID_PROPERTY));
}

#[test]
fn ids_of_extended_properties_compare_as_graph_echoes_them() {
    use super::super::api::same_property;
    assert!(same_property("Integer 0x0E08", "Integer 0xe08"));
    assert!(same_property(
        KEY_PROPERTY,
        "String {8C1F5E3A-6B2D-4F7E-9A41-2D6C0B7E5F13} Name cutoverKey"
    ));
    assert!(!same_property(KEY_PROPERTY, SIZE_PROPERTY));
}

#[test]
fn text_attachments_keep_their_original_bytes() {
    let latin1 = b"caf\xe9\r\n".as_slice();
    let raw = with_attachments(&[("notes.txt", "text/plain; charset=iso-8859-1", latin1)]);
    let built = build(raw.as_bytes(), &Flags::default(), 1).unwrap();
    let v: Value = serde_json::from_slice(&built.request).unwrap();
    assert_eq!(v["attachments"][0]["name"], "notes.txt");
    assert_eq!(v["attachments"][0]["contentBytes"], STANDARD.encode(latin1));
    assert_eq!(v["body"]["content"].as_str().unwrap().trim_end(), "See attached.");
}

#[test]
fn inline_images_keep_content_id() {
    let png = b"\x89PNG\r\n\x1a\nfake image".as_slice();
    let raw = format!(
        "From: a@example.com\r\nSubject: pic\r\nMIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=\"rel\"\r\n\r\n\
--rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p><img src=\"cid:logo@example\"></p>\r\n\
--rel\r\nContent-Type: image/png\r\nContent-ID: <logo@example>\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--rel--\r\n",
        STANDARD.encode(png)
    );
    let (v, _) = build_value(&raw, "", 1);
    assert_eq!(v["body"]["contentType"], "html");
    assert!(v["body"]["content"].as_str().unwrap().contains("cid:logo@example"));
    let att = &v["attachments"][0];
    assert_eq!(att["isInline"], true);
    assert_eq!(att["contentId"], "logo@example");
    assert_eq!(att["contentType"], "image/png");
    assert_eq!(att["name"], "attachment-1.png");
    assert_eq!(att["contentBytes"], STANDARD.encode(png));
    assert_eq!(v["attachments"].as_array().unwrap().len(), 1);
}

#[test]
fn attached_messages_become_eml_files_with_their_bytes() {
    let inner =
        "From: x@example.com\r\nSubject: Inner: report?\r\nMessage-ID: <inner@example.com>\r\n\r\nInner body\r\n";
    let raw = format!(
        "From: a@example.com\r\nSubject: Fwd\r\nMessage-ID: <outer@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"m\"\r\n\r\n\
--m\r\nContent-Type: text/plain\r\n\r\nForwarded below.\r\n--m\r\nContent-Type: message/rfc822\r\n\r\n{inner}\r\n--m--\r\n"
    );
    let (v, _) = build_value(&raw, "", 1);
    assert_eq!(v["internetMessageId"], "<outer@example.com>");
    let att = &v["attachments"][0];
    assert_eq!(att["name"], "Inner_ report_.eml");
    assert_eq!(att["contentType"], "message/rfc822");
    assert_eq!(att["isInline"], false);
    let bytes = STANDARD.decode(att["contentBytes"].as_str().unwrap()).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("From: x@example.com\r\n"), "{text:?}");
    assert!(text.contains("Inner body"));
    assert!(
        !text.contains("Forwarded below"),
        "only the attached message, not its parent"
    );
    assert_eq!(v["body"]["content"].as_str().unwrap().trim_end(), "Forwarded below.");
}

#[test]
fn categories_and_message_ids_are_normalised() {
    let flags = Flags::from_wire("\\Seen $MDNSent Work work Project-X \\Flagged");
    assert_eq!(categories(&flags), ["Work", "Project-X"]);
    assert_eq!(flag_status(&flags), "flagged");
    assert_eq!(flag_status(&Flags::default()), "notFlagged");
    assert_eq!(bracketed_message_id("<a@b>").as_deref(), Some("<a@b>"));
    assert_eq!(bracketed_message_id(" a@b ").as_deref(), Some("<a@b>"));
    assert_eq!(bracketed_message_id("<>"), None);
}

#[test]
fn the_stamped_conversion_the_target_sends_fails_one_message_on_a_parser_panic() {
    // Trips an internal assertion of the MIME parser in debug builds.
    let raw = include_bytes!("../../../../tests/corpus/fuzz/graph_json/mail-parser-multipart-debug-assert.eml");
    let stamp = Stamp::new("u@example.com/INBOX/7/42", raw.len() as u64, None);
    match build_stamped(raw, &Flags::default(), 0, Some(&stamp)) {
        Ok(_) => {} // release builds parse it
        Err(e) => assert!(e.contains("too broken"), "{e}"),
    }
}

/// A message whose body (text or HTML) is `body_bytes` long and whose
/// header block carries `header_bytes` more in folded X-Trace lines.
fn oversized(html: bool, body_bytes: usize, header_bytes: usize) -> Vec<u8> {
    let mut raw = String::from(
        "From: Ann <ann@example.com>\r\nTo: Bob <bob@example.com>\r\nSubject: Large\r\n\
Date: Tue, 30 Apr 2019 12:00:00 +0200\r\nMessage-ID: <large@example.com>\r\nMIME-Version: 1.0\r\n",
    );
    while raw.len() < header_bytes {
        raw.push_str("X-Trace: ");
        raw.push_str(&"t".repeat(900));
        raw.push_str("\r\n");
    }
    raw.push_str(if html {
        "Content-Type: text/html; charset=utf-8\r\n\r\n<html><body>"
    } else {
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    });
    let line = if html {
        "<p>Grüße, a line of the report.</p>\r\n"
    } else {
        "Grüße, a line of the report.\r\n"
    };
    while raw.len() < header_bytes + body_bytes {
        raw.push_str(line);
    }
    if html {
        raw.push_str("</body></html>\r\n");
    }
    raw.into_bytes()
}

#[test]
fn a_body_or_header_block_too_large_for_one_request_is_cut_with_the_original_attached() {
    let mb = 1024 * 1024;
    for (html, body, headers) in [
        (false, 5 * mb, 0),
        (true, 5 * mb, 0),
        (false, 20 * mb, 0),
        (true, 20 * mb, 0),
        (false, 40 * mb, 0),
        (true, 40 * mb, 0),
        (false, 3 * mb, 2 * mb),
    ] {
        let raw = oversized(html, body, headers);
        let what = format!("html {html}, body {body}, headers {headers}");
        let built = build(&raw, &Flags::default(), 1_556_704_800).unwrap();
        assert!(built.cut_to_fit, "{what}");
        assert!(
            built.request.len() < REQUEST_MAX,
            "{what}: {} bytes",
            built.request.len()
        );
        let v: Value = serde_json::from_slice(&built.request).unwrap();
        let content = v["body"]["content"].as_str().unwrap();
        assert!(
            content.contains("original.eml"),
            "{what}: the body says where the rest is"
        );
        assert_eq!(v["subject"], "Large", "{what}");
        assert_eq!(v["internetMessageId"], "<large@example.com>", "{what}");
        let original = built.deferred.iter().find(|a| a.name == ORIGINAL_NAME).unwrap();
        assert_eq!(original.bytes, raw, "{what}: the original, byte for byte");
        assert_eq!(original.content_type, "message/rfc822");
        let headers_kept = prop(&v, "String 0x007D").unwrap();
        assert!(
            headers_kept.starts_with("From: Ann") && headers_kept.ends_with("\r\n\r\n"),
            "{what}"
        );
        let page = built.deferred.iter().find(|a| a.name == HTML_BODY_NAME);
        if html && body < 15 * mb {
            let page = page.unwrap();
            assert!(page.bytes.len() >= body - 1024, "{what}: the whole HTML body");
            assert!(String::from_utf8_lossy(&page.bytes).contains("Grüße"), "{what}");
        } else {
            // Twice the body would pass Exchange's 35 MB item limit: the
            // original carries the HTML alone.
            assert!(page.is_none(), "{what}");
        }
        if !html {
            assert!(
                content.contains("Grüße, a line of the report."),
                "{what}: the text is kept as far as it fits"
            );
        }
    }
    // A message that fits is left alone, a 2 MB header block included.
    for raw in [oversized(false, 100_000, 0), oversized(false, 10_000, 2 * mb)] {
        let built = build(&raw, &Flags::default(), 1).unwrap();
        assert!(!built.cut_to_fit && built.deferred.is_empty());
        assert!(built.request.len() < REQUEST_MAX);
    }
}
