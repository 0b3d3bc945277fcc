//! The hardened XML reader: a body to a small element tree ([`Node`]), with
//! every cap of the codec enforced ([`BODY_CAP`], [`DEPTH_CAP`],
//! [`VALUE_CAP`], [`ELEMENT_CAP`], [`ATTRIBUTE_CAP`]) and markup declarations
//! refused; then the lookups the parsers make in that tree (elements,
//! attributes, texts read as booleans and numbers).

use std::borrow::Cow;

use quick_xml::escape::{EscapeError, resolve_predefined_entity};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::{NsReader, XmlVersion};

use super::model::{Credentials, Envelope};
use super::{
    ATTRIBUTE_CAP, BODY_CAP, DEPTH_CAP, ELEMENT_CAP, NS_SERVICE_PREFIX, PnpError, VALUE_CAP,
};
use crate::udi::Udi;

/// Longest excerpt of an offending value quoted in an error.
const SNIPPET: usize = 64;

/// One parsed element. The tree is at most [`DEPTH_CAP`] deep.
#[derive(Debug)]
pub(super) struct Node {
    /// Namespace URI, if the name is bound to one.
    ns: Option<String>,
    /// Local name.
    name: String,
    /// Attributes other than namespace declarations: (local name, value).
    attrs: Vec<(String, String)>,
    /// Child elements, in document order.
    pub(super) children: Vec<Node>,
    /// Direct text content, references resolved, untrimmed.
    text: String,
}

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// Whether XML 1.0 allows this character at all.
pub(super) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// At most the first [`SNIPPET`] characters of `value`, to quote in an error.
pub(super) fn snippet(value: &str) -> String {
    value.chars().take(SNIPPET).collect()
}

impl Node {
    /// Whether the local name is `name`, ignoring ASCII case.
    pub(super) fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// First child with this local name.
    pub(super) fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.is(name))
    }

    /// First descendant (depth first, document order) with this local name.
    pub(super) fn find(&self, name: &str) -> Option<&Node> {
        self.children
            .iter()
            .find_map(|c| if c.is(name) { Some(c) } else { c.find(name) })
    }

    /// Trimmed value of the attribute with this local name, `None` when
    /// absent or empty.
    pub(super) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim_matches(is_xml_space))
            .filter(|v| !v.is_empty())
    }

    /// Trimmed text, `None` when empty.
    pub(super) fn value(&self) -> Option<&str> {
        Some(self.text.trim_matches(is_xml_space)).filter(|t| !t.is_empty())
    }

    /// Trimmed text of the first descendant so named.
    pub(super) fn text_of(&self, name: &str) -> Option<String> {
        self.find(name).and_then(Node::value).map(str::to_owned)
    }
}

fn refuse_declarations(text: &str) -> Result<(), PnpError> {
    let bytes = text.as_bytes();
    for (at, pair) in bytes.windows(3).enumerate() {
        if pair[0] == b'<' && pair[1] == b'!' && pair[2].is_ascii_alphabetic() {
            let found = bytes
                .iter()
                .skip(at + 2)
                .take_while(|b| b.is_ascii_alphabetic())
                .take(16)
                .map(|&b| char::from(b))
                .collect();
            return Err(PnpError::DtdRefused { found });
        }
    }
    Ok(())
}

fn owned_namespace(ns: ResolveResult<'_>) -> Option<String> {
    match ns {
        ResolveResult::Bound(ns) => Some(ns.0.to_owned()),
        ResolveResult::Unbound | ResolveResult::Unknown(_) => None,
    }
}

fn xml_error(offset: u64, source: quick_xml::Error) -> PnpError {
    match source {
        quick_xml::Error::Escape(EscapeError::UnrecognizedEntity(_, name)) => {
            PnpError::UnknownEntity {
                name: snippet(&name),
            }
        }
        source => PnpError::Xml { offset, source },
    }
}

fn make_node(ns: Option<String>, start: &BytesStart<'_>, offset: u64) -> Result<Node, PnpError> {
    let name = start.local_name().as_ref().to_owned();
    let mut attrs = Vec::new();
    for (count, attr) in start.attributes().enumerate() {
        if count >= ATTRIBUTE_CAP {
            return Err(PnpError::TooManyAttributes {
                element: snippet(&name),
                cap: ATTRIBUTE_CAP,
            });
        }
        let attr = attr.map_err(|e| xml_error(offset, e.into()))?;
        let too_long = || PnpError::ValueTooLong {
            element: snippet(&name),
            cap: VALUE_CAP,
        };
        if attr.key.as_namespace_binding().is_some() {
            if attr.value.len() > VALUE_CAP {
                return Err(too_long());
            }
            continue;
        }
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| xml_error(offset, e))?;
        if value.len() > VALUE_CAP {
            return Err(too_long());
        }
        attrs.push((
            attr.key.local_name().as_ref().to_owned(),
            legal_chars(&value).into_owned(),
        ));
    }
    Ok(Node {
        ns,
        name,
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

/// `value` with every character XML 1.0 forbids (which a character
/// reference can still smuggle in) replaced by U+FFFD, as the encoder does.
fn legal_chars(value: &str) -> Cow<'_, str> {
    if value.chars().all(is_xml_char) {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(
            value
                .chars()
                .map(|c| if is_xml_char(c) { c } else { '\u{FFFD}' })
                .collect(),
        )
    }
}

fn push_text(stack: &mut [Node], text: &str) -> Result<(), PnpError> {
    if let Some(node) = stack.last_mut() {
        if node.text.len() + text.len() > VALUE_CAP {
            return Err(PnpError::ValueTooLong {
                element: snippet(&node.name),
                cap: VALUE_CAP,
            });
        }
        node.text.push_str(&legal_chars(text));
    }
    Ok(())
}

fn attach(stack: &mut [Node], root: &mut Option<Node>, node: Node) -> Result<(), PnpError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None if root.is_some() => return Err(PnpError::MultipleRoots),
        None => *root = Some(node),
    }
    Ok(())
}

/// Parses a body into its root element, enforcing every cap.
fn parse_tree(body: &[u8]) -> Result<Node, PnpError> {
    if body.len() > BODY_CAP {
        return Err(PnpError::BodyTooLarge {
            len: body.len(),
            cap: BODY_CAP,
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| PnpError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = text.trim_start_matches(is_xml_space);
    refuse_declarations(text)?;

    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut elements = 0usize;
    loop {
        let step = reader
            .read_resolved_event()
            .map(|(ns, event)| (owned_namespace(ns), event));
        let (ns, event) = match step {
            Ok(step) => step,
            Err(source) => return Err(xml_error(reader.error_position(), source)),
        };
        let offset = reader.buffer_position();
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                if stack.is_empty() && root.is_some() {
                    return Err(PnpError::MultipleRoots);
                }
                if stack.len() >= DEPTH_CAP {
                    return Err(PnpError::TooDeep { cap: DEPTH_CAP });
                }
                elements += 1;
                if elements > ELEMENT_CAP {
                    return Err(PnpError::TooManyElements { cap: ELEMENT_CAP });
                }
                let node = make_node(ns, start, offset)?;
                if matches!(event, Event::Start(_)) {
                    stack.push(node);
                } else {
                    attach(&mut stack, &mut root, node)?;
                }
            }
            Event::End(_) => {
                if let Some(node) = stack.pop() {
                    attach(&mut stack, &mut root, node)?;
                }
            }
            Event::Text(t) => push_text(&mut stack, &t.xml10_content())?,
            Event::CData(c) => push_text(&mut stack, &c.xml10_content())?,
            Event::GeneralRef(r) => {
                let resolved: Cow<'_, str> = match r.resolve_char_ref() {
                    Ok(Some(c)) => Cow::Owned(c.to_string()),
                    Ok(None) => match resolve_predefined_entity(&r) {
                        Some(s) => Cow::Borrowed(s),
                        None => return Err(PnpError::UnknownEntity { name: snippet(&r) }),
                    },
                    Err(source) => return Err(xml_error(offset, source)),
                };
                push_text(&mut stack, &resolved)?;
            }
            Event::DocType(d) => {
                return Err(PnpError::DtdRefused {
                    found: format!("DOCTYPE {}", snippet(d.trim_matches(is_xml_space))),
                });
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(PnpError::Truncated {
            element: snippet(&open.name),
        });
    }
    root.ok_or(PnpError::Empty)
}

/// Parses the body, checks the root is `<pnp>`, and reads its attributes.
pub(super) fn parse_document(body: &[u8]) -> Result<(Envelope, Node), PnpError> {
    let root = parse_tree(body)?;
    if !root.is("pnp") {
        return Err(PnpError::NotPnp {
            found: snippet(&root.name),
        });
    }
    let udi = root
        .attr("udi")
        .map(|u| {
            u.parse::<Udi>().map_err(|source| PnpError::BadUdi {
                field: "pnp udi attribute",
                source,
            })
        })
        .transpose()?;
    let sid = root.attr("sid").map(str::to_owned);
    let username = root.attr("usr").or_else(|| root.attr("username"));
    let password = root.attr("pwd").or_else(|| root.attr("password"));
    let credentials = (username.is_some() || password.is_some()).then(|| Credentials {
        username: username.unwrap_or_default().to_owned(),
        password: password.unwrap_or_default().to_owned(),
    });
    let envelope = Envelope {
        udi,
        sid,
        credentials,
    };
    Ok((envelope, root))
}

/// The first element child of `<pnp>`, which must be one of `names`.
pub(super) fn message_of<'a>(
    root: &'a Node,
    names: &[&str],
    expected: &'static str,
) -> Result<&'a Node, PnpError> {
    let first = root.children.first().ok_or(PnpError::MissingElement {
        parent: "pnp",
        element: expected,
    })?;
    if names.iter().any(|n| first.is(n)) {
        Ok(first)
    } else {
        Err(PnpError::UnexpectedMessage {
            found: snippet(&first.name),
            expected,
        })
    }
}

/// The service named by the element's namespace, `urn:cisco:pnp:<service>`.
pub(super) fn service_of(node: &Node, element: &'static str) -> Result<String, PnpError> {
    let name = node.ns.as_deref().and_then(|ns| {
        let head = ns.get(..NS_SERVICE_PREFIX.len())?;
        let rest = ns.get(NS_SERVICE_PREFIX.len()..)?;
        let token = !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        (head.eq_ignore_ascii_case(NS_SERVICE_PREFIX) && token).then_some(rest)
    });
    name.map(str::to_owned).ok_or_else(|| PnpError::NoService {
        element,
        namespace: node.ns.as_deref().map(snippet),
    })
}

/// The trimmed value of a required attribute.
pub(super) fn required_attr(
    node: &Node,
    element: &'static str,
    attribute: &'static str,
) -> Result<String, PnpError> {
    node.attr(attribute)
        .map(str::to_owned)
        .ok_or(PnpError::MissingAttribute { element, attribute })
}

/// Reads `1`, `0`, `true` or `false` (ASCII case ignored).
pub(super) fn parse_bool(field: &'static str, value: &str) -> Result<bool, PnpError> {
    let v = value.trim_matches(is_xml_space);
    if v == "1" || v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v == "0" || v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(PnpError::BadBool {
            field,
            value: snippet(v),
        })
    }
}

/// Reads a non-negative integer (an optional `+` allowed).
pub(super) fn parse_number<T: std::str::FromStr>(
    field: &'static str,
    value: &str,
) -> Result<T, PnpError> {
    let v = value.trim_matches(is_xml_space);
    let digits = v.strip_prefix('+').unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PnpError::BadNumber {
            field,
            value: snippet(v),
        });
    }
    digits.parse().map_err(|_| PnpError::BadNumber {
        field,
        value: snippet(v),
    })
}

/// A descendant's text read as a number, `None` when absent or empty.
pub(super) fn number_of<T: std::str::FromStr>(
    node: &Node,
    name: &'static str,
) -> Result<Option<T>, PnpError> {
    node.find(name)
        .and_then(Node::value)
        .map(|v| parse_number(name, v))
        .transpose()
}

/// A descendant's text read as a boolean, `None` when absent or empty.
pub(super) fn bool_of(node: &Node, name: &'static str) -> Result<Option<bool>, PnpError> {
    node.find(name)
        .and_then(Node::value)
        .map(|v| parse_bool(name, v))
        .transpose()
}
