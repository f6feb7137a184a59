//! A headless Chromium driven over the Chrome DevTools Protocol, for the web page's
//! end-to-end test: start Debian's `chromium` with a private profile and
//! `--remote-debugging-port=0`, find the page target through the DevTools HTTP endpoint,
//! and speak CDP (JSON over a WebSocket, `tungstenite`) to it: navigate, evaluate
//! JavaScript, wait for a condition, take a screenshot.
//!
//! Five CDP methods are all the test needs, so this is a small client of our own rather
//! than a generated binding of the whole protocol (`chromiumoxide`, `headless_chrome`).
//! The browser process and its profile directory are removed on drop.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// Where Debian's `chromium` package puts the browser (`FULMEN_CHROMIUM` overrides).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// A running headless Chromium with one page attached.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws: WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

/// The browser binary: `FULMEN_CHROMIUM`, else [`CHROMIUM`], else `chromium` on `PATH`.
pub fn chromium_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FULMEN_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    if Path::new(CHROMIUM).exists() {
        return Some(PathBuf::from(CHROMIUM));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("chromium"))
            .find(|p| p.exists())
    })
}

/// One HTTP GET on loopback; the body (read up to its `Content-Length`: the DevTools server
/// keeps the connection open).
fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())
                    .flatten()
            });
            if len.is_some_and(|n| body.len() >= n) {
                return Ok(body.to_string());
            }
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(text
                .split_once("\r\n\r\n")
                .map(|(_, b)| b.to_string())
                .unwrap_or_default());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
    }
}

impl Browser {
    /// Starts headless Chromium at `width`×`height` on `about:blank` and attaches to its
    /// page. Panics (it is a test helper) with the reason if the browser is missing or does
    /// not come up within 30 s.
    pub fn start(width: u32, height: u32) -> Browser {
        let exe = chromium_path().expect(
            "Chromium not found: install Debian's `chromium` package (.ci/run does) or set FULMEN_CHROMIUM",
        );
        let profile = tempfile::tempdir().expect("profile dir");
        let child = Command::new(&exe)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
        let mut browser_guard = KillOnDrop(Some(child));
        // Chromium writes its DevTools port as the first line of this file.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port: u16 = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
            {
                break p;
            }
            assert!(
                Instant::now() < deadline,
                "Chromium did not open its DevTools port within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let ws_url = loop {
            let page = http_get(port, "/json/list")
                .ok()
                .and_then(|body| serde_json::from_str::<Value>(&body).ok())
                .and_then(|list| {
                    list.as_array()?
                        .iter()
                        .find(|t| t["type"] == "page")
                        .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(String::from))
                });
            if let Some(url) = page {
                break url;
            }
            assert!(
                Instant::now() < deadline,
                "Chromium showed no page target within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let (ws, _) = tungstenite::connect(ws_url.as_str()).expect("DevTools WebSocket");
        let stream = match ws.get_ref() {
            tungstenite::stream::MaybeTlsStream::Plain(s) => s,
            _ => panic!("DevTools on loopback is plain TCP"),
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(90)))
            .expect("read timeout");
        let child = browser_guard.0.take().expect("browser process");
        let mut b = Browser {
            child,
            _profile: profile,
            ws,
            next_id: 1,
        };
        b.call("Page.enable", json!({}));
        b.call("Runtime.enable", json!({}));
        // The window size includes no browser chrome in headless mode on every version:
        // pin the page's viewport itself.
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        );
        b
    }

    /// Sends a CDP command and returns its `result` (events met on the way are dropped).
    /// Panics with the browser's error message if the command fails.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({ "id": id, "method": method, "params": params });
        self.ws
            .send(Message::text(msg.to_string()))
            .unwrap_or_else(|e| panic!("sending {method}: {e}"));
        loop {
            let m = self
                .ws
                .read()
                .unwrap_or_else(|e| panic!("waiting for the answer to {method}: {e}"));
            let Message::Text(text) = m else { continue };
            let v: Value = serde_json::from_str(text.as_str()).expect("CDP JSON");
            if v["id"] != json!(id) {
                continue;
            }
            if let Some(err) = v.get("error") {
                panic!("{method} failed: {err}");
            }
            return v["result"].clone();
        }
    }

    /// Loads `url` in the page.
    pub fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
    }

    /// Evaluates `expr` in the page (awaiting a promise) and returns its value as JSON.
    /// Panics with the exception's text if it throws.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("`{expr}` threw: {ex}");
        }
        r["result"]["value"].clone()
    }

    /// Polls `expr` every 100 ms until it evaluates to a value other than `null`, `false`
    /// or `undefined`; returns it. Panics after `timeout` naming `what`.
    pub fn wait_for(&mut self, what: &str, expr: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.call(
                "Runtime.evaluate",
                json!({ "expression": expr, "returnByValue": true }),
            );
            let v = r["result"]["value"].clone();
            if r.get("exceptionDetails").is_none() && !v.is_null() && v != json!(false) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {}s waiting for {what} (`{expr}` = {v})",
                timeout.as_secs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a PNG screenshot of the page to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        use base64::Engine as _;
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let data = r["data"].as_str().expect("screenshot data");
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("screenshot base64");
        std::fs::write(path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.ws.close(None);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills the browser if [`Browser::start`] panics half way.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
