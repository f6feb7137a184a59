//! Cookie authentication for the daemons' JSON-RPC servers, as bitcoind does it.
//!
//! Owns: generating the random cookie, writing it to `DIR/.cookie` with mode 0600, reading
//! it back, and the tower HTTP middleware ([`CookieAuthLayer`]) that refuses every request
//! whose `Authorization: Basic` header is not `__cookie__:<cookie>` with HTTP 401.
//! Must never: log the cookie, accept a request before comparing the whole credential, or
//! write the cookie file with permissions wider than 0600.

use std::future::Future;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::Context as _;
use base64::Engine as _;
use hyper::{header, Response, StatusCode};
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use rand::RngCore;

/// The user name of cookie authentication (bitcoind's convention).
pub const COOKIE_USER: &str = "__cookie__";

/// File name of the cookie inside a daemon's data directory.
pub const COOKIE_FILE: &str = ".cookie";

/// A fresh random cookie: 32 bytes from the OS-seeded RNG, hex encoded (64 characters).
pub fn generate_cookie() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Writes `cookie` to `path` with mode 0600 (atomically: a temporary file renamed over it).
pub fn write_cookie(path: &Path, cookie: &str) -> anyhow::Result<()> {
    write_private_file(path, cookie.as_bytes())
}

/// Creates a daemon's data directory (and its parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))
}

/// Writes `contents` to `path` atomically (temp file + rename) with mode 0600.
pub fn write_private_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let tmp = tmp_path(path);
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Reads a cookie file: either the bare cookie or bitcoind's `__cookie__:<cookie>` form.
pub fn read_cookie(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading cookie file {}", path.display()))?;
    let text = text.trim();
    let cookie = text
        .strip_prefix(COOKIE_USER)
        .and_then(|rest| rest.strip_prefix(':'))
        .unwrap_or(text);
    anyhow::ensure!(
        !cookie.is_empty(),
        "cookie file {} is empty",
        path.display()
    );
    Ok(cookie.to_owned())
}

/// The `Authorization` header value a client sends for `cookie`.
pub fn basic_auth_header(cookie: &str) -> String {
    let credential = format!("{COOKIE_USER}:{cookie}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credential)
    )
}

/// Compares two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Tower layer refusing requests without the right cookie (HTTP 401).
#[derive(Clone, Debug)]
pub struct CookieAuthLayer {
    expected: std::sync::Arc<str>,
}

impl CookieAuthLayer {
    /// A layer accepting only `Authorization: Basic base64(__cookie__:<cookie>)`.
    pub fn new(cookie: &str) -> CookieAuthLayer {
        CookieAuthLayer {
            expected: basic_auth_header(cookie).into(),
        }
    }
}

impl<S> tower::Layer<S> for CookieAuthLayer {
    type Service = CookieAuth<S>;

    fn layer(&self, inner: S) -> CookieAuth<S> {
        CookieAuth {
            inner,
            expected: self.expected.clone(),
        }
    }
}

/// The service built by [`CookieAuthLayer`].
#[derive(Clone, Debug)]
pub struct CookieAuth<S> {
    inner: S,
    expected: std::sync::Arc<str>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

fn unauthorized() -> HttpResponse {
    let mut response = Response::new(HttpBody::from("unauthorized: missing or wrong cookie\n"));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"jsonrpc\""),
    );
    response
}

impl<S, B> tower::Service<HttpRequest<B>> for CookieAuth<S>
where
    S: tower::Service<HttpRequest<B>, Response = HttpResponse, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        let authorized = request
            .headers()
            .get(header::AUTHORIZATION)
            .is_some_and(|value| constant_time_eq(value.as_bytes(), self.expected.as_bytes()));
        if authorized {
            Box::pin(self.inner.call(request))
        } else {
            tracing::debug!(uri = %request.uri(), "rpc request refused: bad or missing cookie");
            Box::pin(async { Ok(unauthorized()) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_64_hex_chars_and_random() {
        let a = generate_cookie();
        let b = generate_cookie();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn cookie_file_is_private_and_round_trips() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(COOKIE_FILE);
        write_cookie(&path, "abc123").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(read_cookie(&path).unwrap(), "abc123");
        std::fs::write(&path, "__cookie__:xyz\n").unwrap();
        assert_eq!(read_cookie(&path).unwrap(), "xyz");
        std::fs::write(&path, "").unwrap();
        assert!(read_cookie(&path).is_err());
    }

    #[test]
    fn basic_header_matches_rfc7617() {
        // base64("__cookie__:secret")
        assert_eq!(
            basic_auth_header("secret"),
            "Basic X19jb29raWVfXzpzZWNyZXQ="
        );
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
