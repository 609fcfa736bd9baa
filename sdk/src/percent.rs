//! Percent-decoding of URL path segments and query strings.

/// Decodes `%XX` escapes; malformed escapes stay as written, invalid UTF-8 is replaced.
pub fn decode(s: &str) -> String {
    decode_bytes(s.as_bytes(), false)
}

/// Decodes a query-string component: like [`decode`], and `+` is a space.
pub fn decode_query(s: &str) -> String {
    decode_bytes(s.as_bytes(), true)
}

fn decode_bytes(bytes: &[u8], plus_is_space: bool) -> String {
    fn hex(byte: u8) -> Option<u8> {
        char::from(byte).to_digit(16).map(|d| d as u8)
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let Some([b'%', hi, lo]) = bytes.get(i..i + 3)
            && let (Some(hi), Some(lo)) = (hex(*hi), hex(*lo))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(match bytes[i] {
            b'+' if plus_is_space => b' ',
            byte => byte,
        });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Escapes what may not appear literally in a URL path segment, e.g. an id taken from a
/// request before it goes into an outbound URL: `encode_segment("a b/c") == "a%20b%2Fc"`.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(decode("a%20b+c"), "a b+c");
        assert_eq!(decode_query("a%2Fb+c"), "a/b c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("caf%C3%A9"), "café");
    }

    #[test]
    fn encoding_round_trips() {
        let raw = "a b/c?d#é";
        let encoded = encode_segment(raw);
        assert_eq!(encoded, "a%20b%2Fc%3Fd%23%C3%A9");
        assert_eq!(decode(&encoded), raw);
    }
}
