//! WebDAV XML (RFC 4918 §14): escaping text into request bodies, and
//! reading a multistatus by namespace, never by prefix (servers choose
//! their own prefixes; Radicale puts DAV: in the default namespace).

use roxmltree::{Document, Node};

use crate::error::{Error, Result};

pub const DAV: &str = "DAV:";
pub const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
pub const CARDDAV: &str = "urn:ietf:params:xml:ns:carddav";
pub const CALENDARSERVER: &str = "http://calendarserver.org/ns/";
pub const APPLE_ICAL: &str = "http://apple.com/ns/ical/";

/// Text made safe for an XML element or attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab and newlines are not XML.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// Parses an answer body, naming `what` when it is not XML.
pub fn parse<'a>(body: &'a str, what: &str) -> Result<Document<'a>> {
    Document::parse(body).map_err(|e| {
        Error::transient(format!(
            "{what}: the server's answer is not well-formed XML ({e}); retrying"
        ))
    })
}

/// The `DAV:multistatus` root, or a transient error naming `what`.
pub fn multistatus<'a, 'i>(doc: &'a Document<'i>, what: &str) -> Result<Node<'a, 'i>> {
    let root = doc.root_element();
    if is(root, DAV, "multistatus") {
        Ok(root)
    } else {
        Err(Error::transient(format!(
            "{what}: the server's answer is not a DAV multistatus (root element {}); retrying",
            root.tag_name().name()
        )))
    }
}

pub fn is(node: Node, ns: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().namespace() == Some(ns) && node.tag_name().name() == name
}

/// The first child element `ns:name`.
pub fn child<'a, 'i>(node: Node<'a, 'i>, ns: &str, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| is(*c, ns, name))
}

/// Every child element `ns:name`.
pub fn children<'a, 'i: 'a>(node: Node<'a, 'i>, ns: &'a str, name: &'a str) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children().filter(move |c| is(*c, ns, name))
}

/// The text of an element, trimmed (empty for none).
pub fn text(node: Node) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The code of an HTTP status line ("HTTP/1.1 404 Not Found" → 404).
pub fn status_code(line: &str) -> Option<u16> {
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The `DAV:href` of a `DAV:response`.
pub fn response_href(response: Node) -> Option<String> {
    child(response, DAV, "href").map(text).filter(|h| !h.is_empty())
}

/// The status of a `DAV:response` that has one of its own (no propstat).
pub fn response_status(response: Node) -> Option<u16> {
    child(response, DAV, "status").and_then(|s| status_code(&text(s)))
}

/// The property `ns:name` of a response, from a propstat with status 200.
pub fn ok_prop<'a, 'i>(response: Node<'a, 'i>, ns: &str, name: &str) -> Option<Node<'a, 'i>> {
    children(response, DAV, "propstat")
        .filter(|ps| child(*ps, DAV, "status").and_then(|s| status_code(&text(s))) == Some(200))
        .filter_map(|ps| child(ps, DAV, "prop"))
        .find_map(|prop| child(prop, ns, name))
}

/// The text of an optional property, `None` when absent or empty.
pub fn ok_prop_text(response: Node, ns: &str, name: &str) -> Option<String> {
    ok_prop(response, ns, name).map(text).filter(|t| !t.is_empty())
}

/// The hrefs inside a property such as `current-user-principal` or
/// `calendar-home-set`.
pub fn prop_hrefs(response: Node, ns: &str, name: &str) -> Vec<String> {
    ok_prop(response, ns, name)
        .map(|p| children(p, DAV, "href").map(text).filter(|h| !h.is_empty()).collect())
        .unwrap_or_default()
}

/// The precondition or postcondition a `DAV:error` body names (RFC 4918
/// §16), such as `valid-sync-token` or `no-uid-conflict`.
pub fn error_condition(body: &str) -> Option<String> {
    let doc = Document::parse(body).ok()?;
    let root = doc.root_element();
    if !is(root, DAV, "error") {
        return None;
    }
    root.children()
        .find(|c| c.is_element())
        .map(|c| c.tag_name().name().to_owned())
}

/// A PROPFIND body asking for `props`, each `(namespace, name)`.
pub fn propfind_body(props: &[(&str, &str)]) -> String {
    let mut body = String::from(r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>"#);
    for (ns, name) in props {
        body.push_str(&format!(r#"<X:{name} xmlns:X="{ns}"/>"#));
    }
    body.push_str("</D:prop></D:propfind>");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_control_characters() {
        assert_eq!(escape("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }

    #[test]
    fn reads_properties_by_namespace_whatever_the_prefix() {
        let body = r#"<m:multistatus xmlns:m="DAV:" xmlns:q="urn:ietf:params:xml:ns:caldav">
          <m:response><m:href>/a/</m:href>
            <m:propstat><m:prop><m:displayname>Work</m:displayname></m:prop><m:status>HTTP/1.1 200 OK</m:status></m:propstat>
            <m:propstat><m:prop><q:calendar-description/></m:prop><m:status>HTTP/1.1 404 Not Found</m:status></m:propstat>
          </m:response></m:multistatus>"#;
        let doc = parse(body, "test").unwrap();
        let ms = multistatus(&doc, "test").unwrap();
        let r = child(ms, DAV, "response").unwrap();
        assert_eq!(response_href(r).as_deref(), Some("/a/"));
        assert_eq!(ok_prop_text(r, DAV, "displayname").as_deref(), Some("Work"));
        assert!(ok_prop(r, CALDAV, "calendar-description").is_none());
    }

    #[test]
    fn names_the_precondition_of_an_error_body() {
        let body = r#"<error xmlns="DAV:"><valid-sync-token/></error>"#;
        assert_eq!(error_condition(body).as_deref(), Some("valid-sync-token"));
        assert_eq!(error_condition("not xml"), None);
    }
}
