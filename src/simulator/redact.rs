//! What the request log may keep of a credential: the scheme, and a fingerprint to tell tokens
//! apart. The log is served at `/_sim/requests` and printed by tests, so it must not hold a
//! usable token (the bodies' secrets are redacted likewise, by `parse::redact_form`).

use sha2::Digest as _;

/// The value to record for header `name`: a credential keeps only its scheme
/// (`Bearer <redacted>`), anything else is recorded as sent.
pub(crate) fn header_value(name: &str, value: &str) -> String {
    let credential = ["authorization", "proxy-authorization"];
    if !credential.iter().any(|c| name.eq_ignore_ascii_case(c)) {
        return value.to_string();
    }
    match value.trim().split_once(' ') {
        Some((scheme, _)) => format!("{scheme} <redacted>"),
        None => "<redacted>".to_string(),
    }
}

/// The fingerprint of the `Authorization` credential a request carried (see [`token_fingerprint`]).
pub(crate) fn authorization_fingerprint(value: &str) -> String {
    let value = value.trim();
    let credential = value.split_once(' ').map_or(value, |(_, c)| c.trim());
    token_fingerprint(credential)
}

/// The first 8 hex digits of the token's SHA-256: enough to tell the tokens of one run apart
/// (a renewed token from the first), not enough to recover or replay one.
pub fn token_fingerprint(token: &str) -> String {
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_keep_their_scheme_only() {
        assert_eq!(
            header_value("authorization", "Bearer sim-at-1234"),
            "Bearer <redacted>"
        );
        assert_eq!(
            header_value("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
            "Basic <redacted>"
        );
        assert_eq!(header_value("authorization", "sim-at-1234"), "<redacted>");
        assert_eq!(
            header_value("accept", "application/json"),
            "application/json"
        );
    }

    #[test]
    fn fingerprints_tell_tokens_apart_without_holding_them() {
        // SHA-256("abc") = ba7816bf…
        assert_eq!(token_fingerprint("abc"), "ba7816bf");
        assert_eq!(authorization_fingerprint("Bearer abc"), "ba7816bf");
        assert_eq!(authorization_fingerprint("  Bearer   abc "), "ba7816bf");
        assert_ne!(token_fingerprint("sim-at-1"), token_fingerprint("sim-at-2"));
    }
}
