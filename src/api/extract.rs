//! The one extractor of OAuth request bodies: both encodings OAuth clients use
//! (`application/json`, as Battles Record sends, and `application/x-www-form-urlencoded`, as
//! standard OAuth libraries send), read under the size cap and the body-read deadline, reduced to
//! the same ordered list of [`Fields`], so the input rules ([`super::input`]) are written once.

use crate::reply::ApiError;
use axum::extract::Request;
use axum::http::{header, HeaderMap};
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::task::Poll;
use std::time::Duration;

/// Largest request body read (contract: 16 KiB); larger ones get 413 without being read to the end.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest code or token accepted. Real ones are 30 to ~2,000 characters.
pub const MAX_CREDENTIAL_LEN: usize = 4096;

/// The request's body fields in order; `None` for a JSON value that is not a string.
///
/// Parsed once: a name or value that needed no unescaping or percent-decoding (nearly all of
/// them) is a range of the body the fields keep, not a copy of it.
#[derive(Default)]
pub struct Fields {
    body: Bytes,
    fields: Vec<(Text, Option<Text>)>,
}

/// A field's name or value: where it is in the body, or its decoded text.
enum Text {
    InBody(Range<usize>),
    Decoded(String),
}

impl Text {
    /// `text` as found in `body`: a range when it is a slice of it, else a copy.
    fn new(body: &[u8], text: Cow<'_, str>) -> Self {
        match text {
            Cow::Borrowed(slice) => Self::of_slice(body, slice),
            Cow::Owned(decoded) => Self::Decoded(decoded),
        }
    }

    fn of_slice(body: &[u8], slice: &str) -> Self {
        // Where `slice` starts inside `body`, if it is a part of it (compared as addresses): an
        // offset that fits inside `body` is one, since `body` + offset is `slice`'s address.
        let start = (slice.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
        let range = start..start.saturating_add(slice.len());
        if body.get(range.clone()).is_some() {
            Self::InBody(range)
        } else {
            Self::Decoded(slice.to_owned())
        }
    }

    /// The bytes, without checking them as UTF-8 again: enough to compare a name.
    fn as_bytes<'a>(&'a self, body: &'a [u8]) -> &'a [u8] {
        match self {
            Self::InBody(range) => body.get(range.clone()).unwrap_or_default(),
            Self::Decoded(text) => text.as_bytes(),
        }
    }

    fn as_str<'a>(&'a self, body: &'a [u8]) -> &'a str {
        match self {
            // The ranges were made from `&str`s over these same bytes.
            Self::InBody(range) => body
                .get(range.clone())
                .and_then(|part| std::str::from_utf8(part).ok())
                .unwrap_or_default(),
            Self::Decoded(text) => text,
        }
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: values are codes, verifiers and tokens.
        f.debug_list()
            .entries(self.fields.iter().map(|(k, _)| k.as_str(&self.body)))
            .finish()
    }
}

#[derive(Clone, Copy)]
enum Encoding {
    Json,
    Form,
}

/// Reads the body under the size limit and the body-read deadline, and splits it into fields.
pub async fn read_fields(request: Request, deadline: Duration) -> Result<Fields, ApiError> {
    // Two Content-Type headers are ambiguous (which one would a front end have judged?): refused.
    let mut content_types = request.headers().get_all(header::CONTENT_TYPE).iter();
    let content_type = content_types.next().and_then(|v| v.to_str().ok());
    if content_types.next().is_some() {
        return Err(ApiError::UnsupportedMediaType);
    }
    let encoding = encoding(content_type)?;
    if declared_length(request.headers()).is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    let mut body = std::pin::pin!(collect(Limited::new(request.into_body(), MAX_BODY_BYTES)));
    // A body that came in with the headers (nearly every one: they are small) is read at once,
    // and needs no timer; one still arriving gets the deadline.
    let read = match std::future::poll_fn(|cx| Poll::Ready(body.as_mut().poll(cx))).await {
        Poll::Ready(read) => read,
        Poll::Pending => match tokio::time::timeout(deadline, body).await {
            Ok(read) => read,
            Err(_) => return Err(ApiError::BodyTimeout),
        },
    };
    match read {
        Ok(bytes) => decode(encoding, bytes),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::PayloadTooLarge),
        Err(_) => Err(invalid("The request body could not be read.")),
    }
}

/// The whole body: its one chunk as it came (no copy, nothing allocated), or the chunks joined.
async fn collect<B>(mut body: B) -> Result<Bytes, B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut first = Bytes::new();
    let mut joined = BytesMut::new();
    while let Some(frame) = body.frame().await {
        // Trailers carry nothing we read.
        let Ok(chunk) = frame?.into_data() else {
            continue;
        };
        if first.is_empty() && joined.is_empty() {
            first = chunk;
        } else {
            if joined.is_empty() {
                joined.extend_from_slice(&first);
            }
            joined.extend_from_slice(&chunk);
        }
    }
    Ok(if joined.is_empty() {
        first
    } else {
        joined.freeze()
    })
}

/// Decodes a complete body given its `Content-Type` (the fuzz target's entry point: everything a
/// caller controls, without the network).
pub fn decode_body(content_type: Option<&str>, body: &[u8]) -> Result<Fields, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    decode(encoding(content_type)?, Bytes::copy_from_slice(body))
}

fn decode(encoding: Encoding, body: Bytes) -> Result<Fields, ApiError> {
    let fields = match encoding {
        // JSON is UTF-8 (RFC 8259 §8.1) throughout, ignored fields included: checked first, since
        // the parser only validates the strings it decodes.
        Encoding::Json => {
            let text = std::str::from_utf8(&body)
                .map_err(|_| invalid("The request body is not valid UTF-8."))?;
            let mut parser = serde_json::Deserializer::from_str(text);
            ObjectVisitor { body: &body }
                .deserialize(&mut parser)
                .and_then(|fields| parser.end().map(|()| fields))
                .map_err(|_| invalid("The request body is not a valid JSON object."))?
        }
        Encoding::Form => url::form_urlencoded::parse(&body)
            .map(|(k, v)| (Text::new(&body, k), Some(Text::new(&body, v))))
            .collect(),
    };
    Ok(Fields { body, fields })
}

fn invalid(text: &'static str) -> ApiError {
    ApiError::InvalidRequest(Cow::Borrowed(text))
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// `application/json` or `application/x-www-form-urlencoded`, optionally with a UTF-8 `charset`.
fn encoding(content_type: Option<&str>) -> Result<Encoding, ApiError> {
    let value = content_type.ok_or(ApiError::UnsupportedMediaType)?;
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let encoding = if essence.eq_ignore_ascii_case("application/json") {
        Encoding::Json
    } else if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Encoding::Form
    } else {
        return Err(ApiError::UnsupportedMediaType);
    };
    for param in parts {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("charset") {
            let charset = value.trim().trim_matches('"');
            if !["utf-8", "utf8", "us-ascii"]
                .iter()
                .any(|c| charset.eq_ignore_ascii_case(c))
            {
                return Err(ApiError::UnsupportedMediaType);
            }
        }
    }
    Ok(encoding)
}

impl Fields {
    /// The field's value if present once. Present twice is an error (RFC 6749 §3.2: parameters
    /// "MUST NOT be included more than once"); a JSON non-string is an error.
    pub fn optional(&self, name: &'static str) -> Result<Option<&str>, ApiError> {
        let body = &self.body[..];
        // Names compared as bytes: the value found is the one string checked as UTF-8 (again).
        let mut found = self
            .fields
            .iter()
            .filter(|(k, _)| k.as_bytes(body) == name.as_bytes());
        let first = found.next();
        if found.next().is_some() {
            return Err(ApiError::InvalidRequest(
                format!("The `{name}` parameter is included more than once.").into(),
            ));
        }
        match first {
            None => Ok(None),
            Some((_, None)) => Err(ApiError::InvalidRequest(
                format!("The `{name}` parameter must be a string.").into(),
            )),
            Some((_, Some(v))) => Ok(Some(v.as_str(body))),
        }
    }

    /// The field's value; missing or empty is an error.
    pub fn required(&self, name: &'static str) -> Result<&str, ApiError> {
        match self.optional(name)? {
            Some(v) if !v.is_empty() => Ok(v),
            Some(_) => Err(ApiError::InvalidRequest(
                format!("The `{name}` parameter is empty.").into(),
            )),
            None => Err(ApiError::InvalidRequest(
                format!("The `{name}` parameter is missing.").into(),
            )),
        }
    }

    /// A code or token: visible ASCII only (RFC 6749 Appendix A.11 `VSCHAR` minus space), bounded.
    pub fn credential(&self, name: &'static str) -> Result<String, ApiError> {
        let value = self.required(name)?;
        if value.len() > MAX_CREDENTIAL_LEN || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::InvalidRequest(
                format!("The `{name}` parameter is malformed.").into(),
            ));
        }
        Ok(value.to_owned())
    }
}

/// A top-level JSON object read as ordered fields, keeping duplicates so they can be refused
/// (serde_json's maps keep only the last). From any JSON text every name and value is a copy;
/// [`decode`] reads the body so that they are ranges of it.
impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let fields = ObjectVisitor { body: &[] }.deserialize(d)?;
        Ok(Fields {
            body: Bytes::new(),
            fields,
        })
    }
}

/// The object's fields, as ranges of `body` where the parser lends a slice of it.
struct ObjectVisitor<'b> {
    body: &'b [u8],
}

type FieldList = Vec<(Text, Option<Text>)>;

impl<'de> DeserializeSeed<'de> for ObjectVisitor<'_> {
    type Value = FieldList;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<FieldList, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectVisitor<'_> {
    type Value = FieldList;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FieldList, A::Error> {
        let mut fields = Vec::new();
        let body = self.body;
        // JSON names are strings: never `None` inside.
        while let Some(Some(name)) = map.next_key_seed(ValueVisitor { body })? {
            fields.push((name, map.next_value_seed(ValueVisitor { body })?));
        }
        Ok(fields)
    }
}

/// A JSON value: a string, or anything else (consumed and remembered as "not a string").
struct ValueVisitor<'b> {
    body: &'b [u8],
}

impl<'de> DeserializeSeed<'de> for ValueVisitor<'_> {
    type Value = Option<Text>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Text>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueVisitor<'_> {
    type Value = Option<Text>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Option<Text>, E> {
        Ok(Some(Text::of_slice(self.body, v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Option<Text>, E> {
        Ok(Some(Text::Decoded(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Option<Text>, E> {
        Ok(Some(Text::Decoded(v)))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Option<Text>, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Option<Text>, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Option<Text>, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Option<Text>, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Option<Text>, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<Text>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Text>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &str) -> Fields {
        serde_json::from_str(body).expect("object")
    }

    #[test]
    fn json_duplicates_and_non_strings_are_refused() {
        assert!(json(r#"{"refresh_token":"a","refresh_token":"b"}"#)
            .required("refresh_token")
            .is_err());
        assert!(json(r#"{"refresh_token":5}"#)
            .required("refresh_token")
            .is_err());
        assert!(json(r#"{"refresh_token":null}"#)
            .required("refresh_token")
            .is_err());
        assert_eq!(
            json(r#"{"x":[1,{"y":2}],"refresh_token":"ok"}"#)
                .required("refresh_token")
                .ok(),
            Some("ok")
        );
        assert!(serde_json::from_str::<Fields>("[]").is_err());
    }

    #[test]
    fn escaped_and_plain_text_read_the_same_from_a_body() {
        let fields = decode_body(
            Some("application/json"),
            br#"{"code":"a\"b","code_verifier":"plain","n":1}"#,
        )
        .expect("object");
        assert_eq!(fields.required("code").ok(), Some("a\"b"));
        assert_eq!(fields.required("code_verifier").ok(), Some("plain"));
        assert!(fields.required("n").is_err());
        // A name written with an escape is the same name: still a duplicate.
        let twice = decode_body(Some("application/json"), br#"{"code":"x","co\u0064e":"y"}"#)
            .expect("object");
        assert!(twice.required("code").is_err());
        let form = decode_body(
            Some("application/x-www-form-urlencoded"),
            b"code=a%2Bb+c&code_verifier=plain&gr%61nt_type=x",
        )
        .expect("form");
        assert_eq!(form.required("code").ok(), Some("a+b c"));
        assert_eq!(form.required("code_verifier").ok(), Some("plain"));
        assert_eq!(form.required("grant_type").ok(), Some("x"));
        assert_eq!(
            format!("{form:?}"),
            r#"["code", "code_verifier", "grant_type"]"#
        );
    }

    #[test]
    fn debug_shows_names_not_values() {
        let printed = format!("{:?}", json(r#"{"code":"CANARY"}"#));
        assert!(!printed.contains("CANARY"));
        assert!(printed.contains("code"));
    }

    /// A body of the given frames, as a client's arrive.
    struct Frames(std::collections::VecDeque<hyper::body::Frame<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    fn frames(chunks: &[&'static [u8]]) -> Frames {
        Frames(
            chunks
                .iter()
                .map(|chunk| hyper::body::Frame::data(Bytes::from_static(chunk)))
                .collect(),
        )
    }

    #[tokio::test]
    async fn a_body_is_read_whole_however_it_is_split() {
        // One chunk: the very bytes that came, not a copy.
        let one = Bytes::from_static(b"code=a&code_verifier=b");
        let read = collect(Frames([hyper::body::Frame::data(one.clone())].into()))
            .await
            .expect("read");
        assert_eq!(read, one);
        assert_eq!(read.as_ptr(), one.as_ptr());

        // Several, with empty ones and trailers between them.
        let mut split = frames(&[b"", b"code=a", b"", b"&code_verifier", b"=b"]);
        split
            .0
            .insert(3, hyper::body::Frame::trailers(HeaderMap::new()));
        assert_eq!(collect(split).await.expect("read"), one);
        assert_eq!(
            collect(frames(&[b"code=a&", b"code_verifier=b"]))
                .await
                .expect("read"),
            one
        );
        assert_eq!(collect(frames(&[])).await.expect("read"), Bytes::new());
        assert_eq!(
            collect(frames(&[b"", b""])).await.expect("read"),
            Bytes::new()
        );
    }
}
