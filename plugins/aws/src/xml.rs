//! The XML of AWS query-API responses, read into a flat list of elements and their text.
//!
//! AWS answers `Action=…` requests with small documents such as
//! `<CreateUserResponse><CreateUserResult><User><UserName>…` or
//! `<ErrorResponse><Error><Code>…`. Callers look values up by the tail of their element
//! path (`["User", "UserName"]`, `["PolicyNames", "member"]`), ignoring namespaces.
//! Parsing (entities, CDATA, character references) is quick-xml's.

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;

/// A parsed response: every element, in document order, with its path and direct text.
#[derive(Debug, Default)]
pub struct Document {
    elements: Vec<(Vec<String>, String)>,
}

impl Document {
    /// Parses `body`; `Err` says why it is not well-formed XML.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(body).map_err(|_| "the response is not UTF-8".to_owned())?;
        let mut reader = Reader::from_str(text);
        let mut path: Vec<String> = Vec::new();
        // The text collected so far for each open element.
        let mut texts: Vec<String> = Vec::new();
        let mut elements = Vec::new();
        loop {
            let event = reader
                .read_event()
                .map_err(|e| format!("invalid XML: {e}"))?;
            match event {
                Event::Start(e) => {
                    path.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                    texts.push(String::new());
                }
                Event::Empty(e) => {
                    let mut p = path.clone();
                    p.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                    elements.push((p, String::new()));
                }
                Event::End(_) => {
                    let text = texts.pop().unwrap_or_default();
                    elements.push((path.clone(), text));
                    path.pop();
                }
                Event::Text(t) => {
                    let s = t.decode().map_err(|e| format!("invalid XML text: {e}"))?;
                    push_text(&mut texts, &s);
                }
                Event::CData(t) => {
                    let s = t.decode().map_err(|e| format!("invalid XML text: {e}"))?;
                    push_text(&mut texts, &s);
                }
                Event::GeneralRef(r) => {
                    let resolved = match r
                        .resolve_char_ref()
                        .map_err(|e| format!("invalid XML reference: {e}"))?
                    {
                        Some(c) => c.to_string(),
                        None => {
                            let name = r.decode().map_err(|e| format!("invalid XML: {e}"))?;
                            resolve_predefined_entity(&name)
                                .ok_or_else(|| format!("unknown XML entity `&{name};`"))?
                                .to_owned()
                        }
                    };
                    push_text(&mut texts, &resolved);
                }
                Event::Eof => break,
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            }
        }
        if !path.is_empty() {
            return Err("invalid XML: the document ends inside an element".into());
        }
        Ok(Self { elements })
    }

    /// The text of the first element whose path ends with `tail`.
    pub fn first(&self, tail: &[&str]) -> Option<&str> {
        self.all(tail).into_iter().next()
    }

    /// The texts of every element whose path ends with `tail`, in document order.
    pub fn all(&self, tail: &[&str]) -> Vec<&str> {
        self.elements
            .iter()
            .filter(|(path, _)| ends_with(path, tail))
            .map(|(_, text)| text.as_str())
            .collect()
    }
}

fn push_text(texts: &mut [String], s: &str) {
    if let Some(current) = texts.last_mut() {
        current.push_str(s);
    }
}

fn ends_with(path: &[String], tail: &[&str]) -> bool {
    path.len() >= tail.len()
        && path[path.len() - tail.len()..]
            .iter()
            .zip(tail)
            .all(|(a, b)| a == b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_by_path_tail() {
        let body = br#"<?xml version="1.0"?>
<ListUserPoliciesResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <ListUserPoliciesResult>
    <PolicyNames><member>a</member><member>b&amp;c</member></PolicyNames>
    <IsTruncated>true</IsTruncated><Marker>m&#x31;</Marker>
  </ListUserPoliciesResult>
  <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>
</ListUserPoliciesResponse>"#;
        let d = Document::parse(body).unwrap();
        assert_eq!(d.all(&["PolicyNames", "member"]), ["a", "b&c"]);
        assert_eq!(d.first(&["IsTruncated"]), Some("true"));
        assert_eq!(d.first(&["Marker"]), Some("m1"));
        assert_eq!(d.first(&["Nope"]), None);
    }

    #[test]
    fn reads_errors_and_cdata() {
        let body = b"<ErrorResponse><Error><Type>Sender</Type><Code>NoSuchEntity</Code>\
            <Message><![CDATA[user <x> not found]]></Message><Empty/></Error></ErrorResponse>";
        let d = Document::parse(body).unwrap();
        assert_eq!(d.first(&["Error", "Code"]), Some("NoSuchEntity"));
        assert_eq!(d.first(&["Error", "Message"]), Some("user <x> not found"));
        assert_eq!(d.first(&["Error", "Empty"]), Some(""));
    }

    #[test]
    fn refuses_broken_documents() {
        assert!(Document::parse(b"<a><b></a>").is_err());
        assert!(Document::parse(b"<a>").is_err());
        assert!(Document::parse(b"<a>&bogus;</a>").is_err());
        assert!(Document::parse(&[0xff, 0xfe]).is_err());
    }
}
