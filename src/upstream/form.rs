//! The bodies of provider calls, `application/x-www-form-urlencoded` (RFC 6749 §4.1.3, §6;
//! RFC 7009 §2.1), written straight into the bytes sent; and the same encoding of HTTP Basic
//! client credentials (RFC 6749 §2.3.1).
//!
//! Byte for byte what `url::form_urlencoded::Serializer` writes (the WHATWG URL Standard's
//! urlencoded serializer, which the unit tests below compare it with): ASCII letters, digits and
//! `*-._` stay, a space becomes `+`, every other byte of the UTF-8 becomes `%XX` (upper-case hex).
//! Written here because that serializer goes byte by byte through a `String` and was the largest
//! single cost of an exchange outside hyper (issue #15, bench/RESULTS.md); this copies each run of
//! unchanged bytes at once, looked up in a table.

use bytes::Bytes;

/// The bytes the serializer leaves as they are.
static UNCHANGED: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = matches!(byte as u8, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_');
        byte += 1;
    }
    table
};

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// A form being written: `name=value` pairs joined by `&`.
pub(super) struct Form(Vec<u8>);

impl Form {
    /// An empty form with room for `capacity` bytes.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    /// Appends one pair.
    pub(super) fn append_pair(&mut self, name: &str, value: &str) {
        if !self.0.is_empty() {
            self.0.push(b'&');
        }
        encode(&mut self.0, name);
        self.0.push(b'=');
        encode(&mut self.0, value);
    }

    /// The body.
    pub(super) fn finish(self) -> Bytes {
        Bytes::from(self.0)
    }
}

/// `text` encoded on its own: the user and the password of HTTP Basic client credentials
/// (RFC 6749 §2.3.1).
pub(super) fn encoded(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    encode(&mut out, text);
    // Only ASCII is written: each byte is its own character.
    out.into_iter().map(char::from).collect()
}

fn encode(out: &mut Vec<u8>, text: &str) {
    let mut rest = text.as_bytes();
    loop {
        let run = rest
            .iter()
            .position(|&byte| !UNCHANGED[usize::from(byte)])
            .unwrap_or(rest.len());
        let (unchanged, changed) = rest.split_at(run);
        out.extend_from_slice(unchanged);
        let Some((&byte, tail)) = changed.split_first() else {
            return;
        };
        if byte == b' ' {
            out.push(b'+');
        } else {
            out.extend_from_slice(&[
                b'%',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0x0f)],
            ]);
        }
        rest = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(pairs: &[(&str, &str)]) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }

    fn ours(pairs: &[(&str, &str)]) -> String {
        let mut form = Form::with_capacity(0);
        for (name, value) in pairs {
            form.append_pair(name, value);
        }
        String::from_utf8(form.finish().to_vec()).expect("ASCII")
    }

    #[test]
    fn writes_what_the_urlencoded_serializer_writes() {
        // Every single character of the first 512 code points, then alone and between others.
        let mut texts: Vec<String> = (0u32..512)
            .filter_map(char::from_u32)
            .flat_map(|c| [c.to_string(), format!("a{c}b{c}{c}")])
            .collect();
        texts.extend(
            [
                "",
                " ",
                "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                "http://localhost:1420/auth/callback?x=1&y=2#f",
                "a b+c%20d",
                "ünïcødé ☃ 𝄞",
                "*-._~!'()",
            ]
            .map(str::to_owned),
        );
        for text in &texts {
            let pairs = [
                ("grant_type", "authorization_code"),
                (text, text),
                ("k", text),
            ];
            assert_eq!(ours(&pairs), reference(&pairs), "{text:?}");
            assert_eq!(
                encoded(text),
                url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>(),
                "{text:?}"
            );
        }
        assert_eq!(ours(&[]), "");
    }
}
