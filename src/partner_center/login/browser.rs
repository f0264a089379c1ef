//! The browser flow of `pc-qualify login`: authorization code with PKCE (S256) on a loopback
//! redirect `http://localhost:PORT`, with the `state` checked (RFC 6749, RFC 7636, RFC 8252).

use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{first_line, refresh_token_of, Login, LoginError, TokenAnswer};
use crate::partner_center::api::sanitize;

/// How long the browser flow waits for the redirect back before giving up.
const BROWSER_WAIT: Duration = Duration::from_secs(600);
/// Request heads on the loopback listener larger than this are not a browser's redirect.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

impl Login {
    pub(super) async fn browser(
        &self,
        http: &reqwest::Client,
        open: bool,
    ) -> Result<SecretString, LoginError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(LoginError::Loopback)?;
        let port = listener.local_addr().map_err(LoginError::Loopback)?.port();
        // `localhost` may resolve to ::1 first in the browser; listen there too when possible.
        let listener_v6 = TcpListener::bind(("::1", port)).await.ok();
        let redirect_uri = format!("http://localhost:{port}");
        let verifier = random_urlsafe();
        let challenge = pkce_challenge(&verifier);
        let state = random_urlsafe();
        let mut url =
            reqwest::Url::parse(&self.endpoint("authorize")).map_err(LoginError::AuthorizeUrl)?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("response_mode", "query")
            .append_pair("scope", &self.scope())
            .append_pair("state", state.expose_secret())
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        eprintln!("pc-qualify: sign in with your browser at this address:\n\n  {url}\n");
        if open {
            if let Err(e) = webbrowser::open(url.as_str()) {
                eprintln!(
                    "pc-qualify: could not open a browser ({e}); open the address above yourself"
                );
            }
        }
        eprintln!("pc-qualify: waiting for the sign-in to come back to {redirect_uri} (Ctrl-C to give up)...");
        let code = tokio::time::timeout(
            BROWSER_WAIT,
            wait_for_redirect(&listener, listener_v6.as_ref(), &state),
        )
        .await
        .map_err(|_| LoginError::BrowserTimeout(BROWSER_WAIT))??;
        let mut form = self.client_fields();
        form.push(("grant_type", "authorization_code".to_string()));
        form.push(("code", code.expose_secret().to_string()));
        form.push(("redirect_uri", redirect_uri));
        form.push(("code_verifier", verifier.expose_secret().to_string()));
        form.push(("scope", self.scope()));
        let answer = self.post(http, &self.endpoint("token"), &form).await?;
        let token: TokenAnswer = serde_json::from_slice(&answer.body).unwrap_or_default();
        refresh_token_of(answer.status, token, &answer.body)
    }
}

/// 32 bytes from the operating system's generator (two v4 UUIDs: 244 random bits), base64url:
/// 43 characters, RFC 7636's minimum verifier length, and plenty for `state`.
fn random_urlsafe() -> SecretString {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// RFC 7636 S256: `BASE64URL(SHA256(ASCII(code_verifier)))`.
fn pkce_challenge(verifier: &SecretString) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.expose_secret().as_bytes()))
}

/// Serves the loopback listeners until the redirect arrives.
async fn wait_for_redirect(
    v4: &TcpListener,
    v6: Option<&TcpListener>,
    state: &SecretString,
) -> Result<SecretString, LoginError> {
    loop {
        let accepted = match v6 {
            Some(v6) => tokio::select! {
                a = v4.accept() => a,
                a = v6.accept() => a,
            },
            None => v4.accept().await,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        // A stalled connection must not block the real redirect for long.
        match tokio::time::timeout(Duration::from_secs(10), answer_redirect(stream, state)).await {
            Ok(Some(result)) => return result,
            Ok(None) | Err(_) => continue,
        }
    }
}

/// The redirect's outcome; `None` for any other request (a favicon, a probe): keep waiting.
async fn answer_redirect(
    mut stream: TcpStream,
    state: &SecretString,
) -> Option<Result<SecretString, LoginError>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > MAX_REQUEST_HEAD {
            return None;
        }
    }
    let text = String::from_utf8_lossy(&head);
    let line = text.lines().next().unwrap_or_default();
    let target = line.strip_prefix("GET ").unwrap_or_default();
    let target = target.split(' ').next().unwrap_or_default();
    let Ok(url) = reqwest::Url::parse(&format!("http://localhost{target}")) else {
        respond(&mut stream, 400, "Bad request.").await;
        return None;
    };
    if url.path() != "/" {
        respond(&mut stream, 404, "Not found.").await;
        return None;
    }
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let (code, error) = (param("code"), param("error"));
    if code.is_none() && error.is_none() {
        respond(&mut stream, 404, "Not found.").await;
        return None;
    }
    // RFC 6749 section 10.12: only the redirect answering our own request is accepted.
    if param("state").as_deref() != Some(state.expose_secret()) {
        respond(
            &mut stream,
            400,
            "This sign-in did not start here (state mismatch). Nothing was saved; close this tab.",
        )
        .await;
        return Some(Err(LoginError::StateMismatch));
    }
    if let Some(error) = error {
        respond(
            &mut stream,
            400,
            "The sign-in did not succeed; see the terminal. You can close this tab.",
        )
        .await;
        return Some(Err(if error == "access_denied" {
            LoginError::Declined { error }
        } else {
            LoginError::Authorize {
                error: sanitize(&error),
                description: sanitize(first_line(&param("error_description").unwrap_or_default())),
            }
        }));
    }
    respond(
        &mut stream,
        200,
        "Signed in. pc-qualify is saving the refresh token; you can close this tab.",
    )
    .await;
    Some(Ok(SecretString::from(code.unwrap_or_default())))
}

async fn respond(stream: &mut TcpStream, status: u16, text: &str) {
    let reason = reqwest::StatusCode::from_u16(status).map(|s| s.canonical_reason());
    let reason = reason.ok().flatten().unwrap_or_default();
    let body = format!(
        "<!doctype html><html><head><title>pc-qualify</title></head><body><p>{text}</p></body></html>"
    );
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_challenge_is_rfc_7636_s256() {
        // Expected value computed independently:
        // base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=") in Python.
        let verifier =
            SecretString::from("dBjftJeZ4CVP-mJ92IZD-uR4MzZqUE2mBMXD6ku8NuM".to_string());
        assert_eq!(
            pkce_challenge(&verifier),
            "pD5jntlL_5vszsQvXUQ2EkuB8jXw4v9OAMMaJURpDuI"
        );
        let a = random_urlsafe();
        let b = random_urlsafe();
        assert_eq!(a.expose_secret().len(), 43);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(a
            .expose_secret()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
