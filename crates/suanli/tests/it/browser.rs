//! A small WebDriver client for the portal's browser tests: Debian's Chromium, headless, driven
//! through Debian's chromedriver over plain HTTP on loopback with the `reqwest` the tests already
//! use (the WebDriver client crates bring a second TLS stack to build, for a protocol that here
//! never leaves the machine).
//!
//! Without chromedriver the tests that need it skip, saying so, except under `CI=true`, where
//! `.ci/run` installs it and a missing browser is a failure.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

const DRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session in it; both end when dropped.
pub struct Browser {
    http: reqwest::Client,
    session: String,
    base: String,
    driver: Child,
    _profile: tempfile::TempDir,
    /// Screenshots go here, named by test and step.
    shots: PathBuf,
    test: String,
}

/// `Some(browser)`, or `None` (a skip, printed) without chromedriver outside CI.
pub async fn start(test: &str, lang: &str) -> Option<Browser> {
    if !std::path::Path::new(DRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
        crate::check::skip(
            test,
            &format!("no {DRIVER} or {CHROMIUM} (apt install chromium chromium-driver)"),
        );
        return None;
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let driver = Command::new(DRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = http.get(format!("{base}/status")).send().await;
        if let Ok(r) = ready
            && let Ok(v) = r.json::<Value>().await
            && v["value"]["ready"] == json!(true)
        {
            break;
        }
        assert!(Instant::now() < deadline, "chromedriver never got ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let profile = tempfile::tempdir().unwrap();
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:loggingPrefs": {"browser": "ALL"},
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", format!("--lang={lang}"),
                format!("--user-data-dir={}", profile.path().display()),
            ],
            "prefs": {"intl.accept_languages": lang},
        },
    }}});
    let v: Value = http
        .post(format!("{base}/session"))
        .json(&caps)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = v["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {v}"))
        .to_string();
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    Some(Browser {
        http,
        session,
        base,
        driver,
        _profile: profile,
        shots,
        test: test.to_string(),
    })
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// An element of the page.
#[derive(Clone, Debug)]
pub struct El(String);

impl Browser {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let v = self.call(method, path, body).await;
        assert!(v.get("error").is_none(), "WebDriver {path}: {v}");
        v
    }

    pub async fn goto(&self, url: &str) {
        self.ok(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub async fn url(&self) -> String {
        self.ok(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The page's HTML as the browser holds it.
    pub async fn source(&self) -> String {
        self.ok(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The element, waiting up to 10 s for it to appear (a page still loading).
    pub async fn find(&self, css: &str) -> El {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.try_find(css).await {
                return e;
            }
            assert!(Instant::now() < deadline, "no element {css} on the page");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn try_find(&self, css: &str) -> Option<El> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().map(|s| El(s.to_string()))
    }

    /// Clicks a link or a form's button and waits for the page it leads to: WebDriver's click
    /// returns before a form's navigation ends, so the old document's root element must be
    /// gone first (element references belong to one document).
    pub async fn click(&self, css: &str) {
        let before = self.find("html").await;
        let e = self.find(css).await;
        self.ok(
            reqwest::Method::POST,
            &format!("/element/{}/click", e.0),
            Some(json!({})),
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(now) = self.try_find("html").await
                && now.0 != before.0
                && self.try_find("main").await.is_some()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "clicking {css} led to no new page"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Replaces the field's value with `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.ok(
            reqwest::Method::POST,
            &format!("/element/{}/clear", e.0),
            Some(json!({})),
        )
        .await;
        self.ok(
            reqwest::Method::POST,
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// The rendered text of the element (what a reader sees).
    pub async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.ok(
            reqwest::Method::GET,
            &format!("/element/{}/text", e.0),
            None,
        )
        .await
        .as_str()
        .unwrap()
        .to_string()
    }

    /// Is a JavaScript dialog open (an `alert` that ran)?
    pub async fn alert_open(&self) -> bool {
        let v = self.call(reqwest::Method::GET, "/alert/text", None).await;
        v.get("error").is_none()
    }

    /// The browser console's messages at level SEVERE since the last call (CSP violations,
    /// failed loads, script errors).
    pub async fn console_errors(&self) -> Vec<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/se/log",
                Some(json!({"type": "browser"})),
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Saves a PNG of the window as `target/screenshots/TEST-STEP.png` and returns its path.
    pub async fn shot(&self, step: &str) -> PathBuf {
        let b64 = self.ok(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        let path = self.shots.join(format!("{}-{step}.png", self.test));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page and returns what
    /// it returns; a returned promise is awaited. WebDriver runs it outside the page's CSP.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.ok(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Resizes the window to `width` x `height` CSS pixels.
    pub async fn window_size(&self, width: u32, height: u32) {
        self.ok(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    /// Presses and releases one key (a WebDriver key code, e.g. `"\u{E004}"` for Tab) as a
    /// user does, on whatever element has the focus.
    pub async fn press(&self, key: &str) {
        self.ok(
            reqwest::Method::POST,
            "/actions",
            Some(json!({"actions": [{
                "type": "key", "id": "keyboard",
                "actions": [{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}],
            }]})),
        )
        .await;
        self.ok(reqwest::Method::DELETE, "/actions", None).await;
    }

    /// Types `text` key by key into whatever element has the focus.
    pub async fn type_text(&self, text: &str) {
        let keys: Vec<Value> = text
            .chars()
            .flat_map(|c| {
                let k = c.to_string();
                [
                    json!({"type": "keyDown", "value": k}),
                    json!({"type": "keyUp", "value": k}),
                ]
            })
            .collect();
        self.ok(
            reqwest::Method::POST,
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": keys}]})),
        )
        .await;
        self.ok(reqwest::Method::DELETE, "/actions", None).await;
    }

    /// Makes pages see `prefers-color-scheme: dark` (or light again), through Chromium's
    /// DevTools protocol as chromedriver passes it on.
    pub async fn dark(&self, on: bool) {
        let scheme = if on { "dark" } else { "light" };
        self.ok(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(json!({"cmd": "Emulation.setEmulatedMedia", "params": {
                "features": [{"name": "prefers-color-scheme", "value": scheme}],
            }})),
        )
        .await;
    }

    /// Reloads until `css`'s text contains `needle`, within `limit`.
    pub async fn wait_text(&self, css: &str, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let url = self.url().await;
            self.goto(&url).await;
            // Read in one script, not through an element reference: a live page may reload
            // itself between finding an element and reading it.
            let read =
                "var e = document.querySelector(arguments[0]); return e ? e.innerText : null;";
            let found = self.execute(read, serde_json::json!([css])).await;
            if let Some(t) = found.as_str().map(String::from) {
                if t.contains(needle) {
                    return t;
                }
                assert!(
                    Instant::now() < deadline,
                    "{css} never showed {needle:?}: {t}"
                );
            }
            assert!(Instant::now() < deadline, "{css} never appeared");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}
