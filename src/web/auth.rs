//! The token check of `audit serve --token`: `Authorization: Bearer TOKEN` for programs, or
//! `?token=TOKEN` once in a browser, which sets an HttpOnly cookie and redirects to the same
//! page without the token (so it leaves the address bar and the history).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use maud::html;
use sha2::{Digest, Sha256};

const COOKIE: &str = "audit_token";

/// The expected token, kept as its digest: the cookie carries the digest, not the token.
#[derive(Debug)]
pub struct Token {
    digest: String,
}

fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares in time independent of where the texts differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Token {
    /// The token as given on the command line.
    pub fn new(token: &str) -> Token {
        Token { digest: digest(token) }
    }

    fn matches(&self, presented: &str) -> bool {
        same(&digest(presented), &self.digest)
    }
}

/// The query string without its `token` parameter, as a path on this server: `//evil.example/`
/// (or `/\\evil.example/`, which browsers read alike) would send the browser to another host.
fn without_token(uri: &Uri) -> String {
    let path = format!("/{}", uri.path().trim_start_matches(['/', '\\']));
    let rest: Vec<(String, String)> = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .filter(|(k, _)| k != "token")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if rest.is_empty() {
        return path;
    }
    let query: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(rest).finish();
    format!("{path}?{query}")
}

/// Lets a request through when it carries the token (header or cookie), or answers 401.
pub async fn check(State(token): State<Arc<Token>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, t)| token.matches(t.trim()));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(&format!("{COOKIE}=")).map(str::to_string))
        .any(|c| same(&c, &token.digest));
    if bearer || cookie {
        return next.run(request).await;
    }
    let given = url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned());
    if let Some(given) = given
        && token.matches(&given)
    {
        let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, without_token(request.uri()))]).into_response();
        let cookie = format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", token.digest);
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        return response;
    }
    let body = html! {
        h1 { "A token is needed" }
        p.error { "This audit view is served with a token, and this request did not carry a valid one." }
        p { "Open the address with " code { "?token=…" } " once (the person running " code { "audit serve" }
            " has it), or send " code { "Authorization: Bearer …" } "." }
    };
    let mut response =
        (StatusCode::UNAUTHORIZED, super::layout::page("Token needed", &super::layout::zone_label(), body))
            .into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_leaves_the_address_and_only_the_same_token_matches() {
        let uri: Uri = "/serial?serial=A%26B&token=t0k&on=2025-01-01".parse().unwrap();
        assert_eq!(without_token(&uri), "/serial?serial=A%26B&on=2025-01-01");
        assert_eq!(without_token(&"/?token=x".parse().unwrap()), "/");
        // Never to another host.
        assert_eq!(without_token(&"//evil.example/?token=x".parse().unwrap()), "/evil.example/");
        assert_eq!(without_token(&"/%5Cevil.example/?token=x".parse().unwrap()), "/%5Cevil.example/");
        assert_eq!(without_token(&"/\\evil.example/?token=x".parse().unwrap()), "/evil.example/");
        let t = Token::new("t0k");
        assert!(t.matches("t0k"));
        assert!(!t.matches("t0K") && !t.matches("") && !t.matches("t0k "));
        assert!(!same("abc", "abd") && same("abc", "abc") && !same("ab", "abc"));
    }
}
