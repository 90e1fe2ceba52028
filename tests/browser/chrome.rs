//! Headless Chromium through chromedriver, with the checks every page gets:
//! an axe-core audit, no inline scripts or styles, visible keyboard focus,
//! no sideways scrolling at 360 px, and screenshots.

use std::fs::File;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tempfile::TempDir;

/// Exactly these, plus a fresh `--user-data-dir`.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
];

const DESKTOP: (u32, u32) = (1280, 800);
const PHONE_WIDTH: u32 = 360;

/// What the browser tests need from the machine.
pub struct Tools {
    chromedriver: PathBuf,
    chromium: PathBuf,
    axe: String,
}

fn axe_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules/axe-core/axe.min.js")
}

/// The tools, or `None` after saying on the terminal why the browser tests
/// are skipped. With `USHER_BROWSER_TESTS=required` a missing tool fails
/// the test instead.
pub fn tools() -> Option<Tools> {
    let mode = std::env::var("USHER_BROWSER_TESTS").unwrap_or_default();
    let required = match mode.as_str() {
        "required" => true,
        "" | "auto" => false,
        "skip" => {
            skip_notice("USHER_BROWSER_TESTS=skip");
            return None;
        }
        other => panic!("USHER_BROWSER_TESTS must be `required`, `skip` or `auto`, not {other:?}"),
    };
    let chromedriver = find_binary("USHER_CHROMEDRIVER", &["chromedriver"]);
    let chromium = find_binary("USHER_CHROMIUM", &["chromium", "chromium-browser"]);
    let axe = std::fs::read_to_string(axe_path())
        .map_err(|_| format!("no {} (run `npm ci` in tests/browser)", axe_path().display()));
    match (chromedriver, chromium, axe) {
        (Ok(chromedriver), Ok(chromium), Ok(axe)) => Some(Tools { chromedriver, chromium, axe }),
        (chromedriver, chromium, axe) => {
            let missing: Vec<String> = [chromedriver.err(), chromium.err(), axe.err()].into_iter().flatten().collect();
            let reason = missing.join("; ");
            if required {
                panic!("browser tests are required (USHER_BROWSER_TESTS=required) but cannot run: {reason}");
            }
            skip_notice(&reason);
            None
        }
    }
}

fn skip_notice(reason: &str) {
    static NOTICE: Once = Once::new();
    NOTICE.call_once(|| {
        // Written past the test harness's capture, so it shows in every run.
        let _ = writeln!(
            std::io::stderr(),
            "\nSKIPPED: browser tests ({reason}). Install Debian's chromium and chromium-driver and run \
             `npm ci` in tests/browser to run them; .ci/run always does.\n"
        );
    });
}

/// `$variable` if set, else the first of `names` on `PATH`.
fn find_binary(variable: &str, names: &[&str]) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(variable).filter(|path| !path.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() { Ok(path) } else { Err(format!("{variable}={} does not exist", path.display())) };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    names
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| format!("no {} on PATH", names.join(" or ")))
}

/// One browser for one test, on one Usher.
pub struct Chrome {
    pub client: Client,
    base: String,
    axe: String,
    screenshots: PathBuf,
    /// Serious or critical problems found so far; `finish` fails on them.
    failures: Mutex<Vec<String>>,
    driver: Child,
    _profile: TempDir,
    scratch: TempDir,
}

impl Chrome {
    /// Starts chromedriver on a free port and a fresh headless Chromium.
    pub async fn start(tools: Tools, base: &str) -> Self {
        let profile = tempfile::tempdir().expect("profile dir");
        let scratch = tempfile::tempdir().expect("scratch dir");
        let log_path = scratch.path().join("chromedriver.log");
        let log = File::create(&log_path).expect("chromedriver log");
        let port = free_port();
        let mut driver = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            // Its own process group, so that the browser it starts ends
            // with it even when a test panics (see `Drop`).
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", tools.chromedriver.display()));
        wait_for_port(&mut driver, port, &log_path);

        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|arg| arg.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": tools.chromium, "args": args },
        });
        let Value::Object(capabilities) = capabilities else { unreachable!() };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("chromedriver could not start {}: {e}\n{log}", tools.chromium.display())
            });
        client.set_window_size(DESKTOP.0, DESKTOP.1).await.expect("window size");
        let screenshots = std::env::var_os("USHER_SCREENSHOT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots"));
        std::fs::create_dir_all(&screenshots).expect("screenshot dir");
        Self {
            client,
            base: base.to_owned(),
            axe: tools.axe,
            screenshots,
            failures: Mutex::default(),
            driver,
            _profile: profile,
            scratch,
        }
    }

    /// Ends the browser; fails the test if any page had a serious problem.
    pub async fn finish(self) {
        let failures = std::mem::take(&mut *self.failures.lock().unwrap());
        let _ = self.client.clone().close().await;
        drop(self);
        assert!(failures.is_empty(), "{} problem(s) in the pages:\n\n{}", failures.len(), failures.join("\n\n"));
    }

    fn fail(&self, problem: String) {
        let _ = writeln!(std::io::stderr(), "PROBLEM: {problem}");
        self.failures.lock().unwrap().push(problem);
    }

    pub async fn open(&self, path: &str) {
        self.open_url(&format!("{}{path}", self.base)).await;
    }

    pub async fn open_url(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Waits until the browser shows `path` (without the query).
    #[track_caller]
    pub fn wait_for_path<'a>(&'a self, path: &'a str) -> impl Future<Output = ()> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let url = self.client.current_url().await.expect("current url");
                let ready = self.client.execute("return document.readyState", vec![]).await.expect("readyState");
                if url.path() == path && ready == "complete" {
                    return;
                }
                if Instant::now() > deadline {
                    let body = self.text("body").await;
                    panic!("{caller}: expected to be on {path}, but the browser shows {url}:\n{body}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Types into the input with this id, replacing what it held.
    pub async fn fill(&self, id: &str, value: &str) {
        let input = self.client.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("no input #{id}: {e}"));
        input.clear().await.expect("clear input");
        input.send_keys(value).await.expect("type");
    }

    /// Presses the button labelled `label` (the first, in page order).
    pub async fn press(&self, label: &str) {
        let xpath = format!("//button[normalize-space()='{label}']");
        let button =
            self.client.find(Locator::XPath(&xpath)).await.unwrap_or_else(|e| panic!("no button {label:?}: {e}"));
        self.navigates(&format!("press {label:?}"), button.click()).await;
    }

    /// Follows the first link whose `href` starts with `href_prefix`.
    pub async fn follow_link_to(&self, href_prefix: &str) {
        let css = format!("a[href^='{href_prefix}']");
        let link =
            self.client.find(Locator::Css(&css)).await.unwrap_or_else(|e| panic!("no link to {href_prefix}: {e}"));
        self.navigates(&format!("follow the link to {href_prefix}"), link.click()).await;
    }

    /// Posts the page's form whose action is `action` with its fields, as
    /// the browser would with its cookies (a download does not load a page,
    /// so it is read this way): the status, the `Content-Disposition`
    /// header and the body.
    pub async fn download(&self, action: &str) -> (u64, String, String) {
        const SCRIPT: &str = r#"
            const [action, done] = arguments;
            const form = document.querySelector(`form[action="${action}"]`);
            fetch(form.action, { method: 'POST', credentials: 'same-origin', body: new URLSearchParams(new FormData(form)) })
              .then(async r => done([r.status, r.headers.get('content-disposition') || '', await r.text()]));
        "#;
        let found =
            self.client.execute_async(SCRIPT, vec![Value::String(action.to_owned())]).await.expect("post the form");
        let part = |i: usize| found[i].as_str().unwrap_or_default().to_owned();
        (found[0].as_u64().unwrap_or_default(), part(1), part(2))
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.map_or(0, |found| found.len())
    }

    /// Follows the link with this text (the first, in page order).
    pub async fn follow(&self, text: &str) {
        let link = self.client.find(Locator::LinkText(text)).await.unwrap_or_else(|e| panic!("no link {text:?}: {e}"));
        self.navigates(&format!("follow {text:?}"), link.click()).await;
    }

    /// Runs `action` and waits until it has loaded a new page (the old
    /// page's marker is gone), even when the new page has the same URL.
    async fn navigates(&self, what: &str, action: impl Future<Output = Result<(), fantoccini::error::CmdError>>) {
        self.client.execute("window.usherOldPage = true", vec![]).await.expect("mark the page");
        action.await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        let loaded = "return window.usherOldPage === undefined && document.readyState === 'complete'";
        while self.client.execute(loaded, vec![]).await.ok() != Some(Value::Bool(true)) {
            assert!(Instant::now() < deadline, "{what}: no new page after 10 s");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The visible text of the first element matching `css`, or "".
    pub async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        element.attr(name).await.expect("attribute")
    }

    /// The `class` of the element that has the focus, or "".
    pub async fn focused_class(&self) -> String {
        let script = "return document.activeElement ? document.activeElement.className : ''";
        self.client.execute(script, vec![]).await.ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }

    /// The address the browser shows.
    pub async fn current_url(&self) -> url::Url {
        self.client.current_url().await.expect("current url")
    }

    /// The computed `font-family` of the first element matching `css`.
    pub async fn font_family(&self, css: &str) -> String {
        let script = "return getComputedStyle(document.querySelector(arguments[0])).fontFamily";
        let found = self.client.execute(script, vec![Value::String(css.to_owned())]).await.expect("font-family");
        found.as_str().unwrap_or_default().to_owned()
    }

    /// The `id` of the element that has the focus, or "".
    pub async fn focused_id(&self) -> String {
        let script = "return document.activeElement ? document.activeElement.id : ''";
        self.client.execute(script, vec![]).await.ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }

    /// The `href` attributes, as written, of the elements matching `css`.
    pub async fn hrefs(&self, css: &str) -> Vec<String> {
        let script = "return Array.from(document.querySelectorAll(arguments[0])).map(a => a.getAttribute('href'))";
        let found = self.client.execute(script, vec![Value::String(css.to_owned())]).await.expect("hrefs");
        serde_json::from_value(found).expect("a list of strings")
    }

    /// The flash message on the page without its screen-reader prefix, or "".
    pub async fn flash(&self) -> String {
        let script = r#"
            const flash = document.querySelector('.flash');
            if (!flash) return '';
            const copy = flash.cloneNode(true);
            copy.querySelectorAll('.visually-hidden').forEach(hidden => hidden.remove());
            return copy.textContent.trim();
        "#;
        self.client.execute(script, vec![]).await.ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }

    /// The flash message's kind and ARIA role, e.g. `("flash flash-error", "alert")`.
    pub async fn flash_kind(&self) -> (String, String) {
        let class = self.attribute(".flash", "class").await.unwrap_or_default();
        let role = self.attribute(".flash", "role").await.unwrap_or_default();
        (class, role)
    }

    /// Every check a page gets, then its screenshots as `name-desktop.png`
    /// and `name-360.png`.
    pub async fn check_page(&self, name: &str) {
        self.check_no_inline_code(name).await;
        self.audit(name).await;
        self.client.set_window_size(PHONE_WIDTH, DESKTOP.1).await.expect("window size");
        self.audit(&format!("{name} at {PHONE_WIDTH} px")).await;
        self.client.set_window_size(DESKTOP.0, DESKTOP.1).await.expect("window size");
        self.check_focus_is_visible(name).await;
        self.screenshots(name, true).await;
    }

    /// A strict Content-Security-Policy (`default-src 'self'`) must hold:
    /// no inline scripts, styles, event handlers, or outside resources.
    async fn check_no_inline_code(&self, name: &str) {
        const SCRIPT: &str = r#"
            const found = [];
            const foreign = (url) => url && new URL(url, location.href).origin !== location.origin;
            for (const el of document.querySelectorAll('*')) {
              const tag = el.tagName.toLowerCase();
              if (tag === 'script') found.push(el.src ? (foreign(el.src) ? 'script from ' + el.src : '') : 'inline <script>');
              if (tag === 'style') found.push('<style> element');
              if (tag === 'link' && foreign(el.href)) found.push('<link> to ' + el.href);
              if (tag === 'img' && foreign(el.src)) found.push('<img> from ' + el.src);
              for (const attr of el.getAttributeNames()) {
                if (attr === 'style' || attr.startsWith('on')) found.push('<' + tag + ' ' + attr + '>');
              }
              if (tag === 'a' && (el.getAttribute('href') || '').trim().toLowerCase().startsWith('javascript:')) {
                found.push('javascript: link');
              }
            }
            return found.filter(Boolean);
        "#;
        let found = self.client.execute(SCRIPT, vec![]).await.expect("inline code check");
        let found: Vec<String> = serde_json::from_value(found).expect("list of strings");
        if !found.is_empty() {
            self.fail(format!("{name}: breaks a strict CSP: {}", found.join(", ")));
        }
    }

    /// Injects axe-core into the current page and runs every rule: the
    /// violations, each with `id`, `impact`, `help`, `url` and `nodes`.
    pub async fn axe_violations(&self, name: &str) -> Vec<Value> {
        const RUN: &str = r#"
            const done = arguments[arguments.length - 1];
            axe.run(document, { resultTypes: ['violations'] })
              .then((results) => done(results.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help, url: v.helpUrl,
                nodes: v.nodes.map((n) => n.target.join(' ') + ': ' + (n.failureSummary || '').replace(/\s+/g, ' ')),
              }))))
              .catch((error) => done({ error: String(error) }));
        "#;
        self.client.execute(&self.axe, vec![]).await.expect("inject axe-core");
        let violations = self.client.execute_async(RUN, vec![]).await.expect("run axe-core");
        if let Some(error) = violations.get("error") {
            panic!("{name}: axe-core failed: {error}");
        }
        let Value::Array(violations) = violations else { panic!("{name}: axe-core answered {violations}") };
        violations
    }

    /// Audits the current page with axe-core; serious and critical
    /// violations fail the test, lesser ones are printed.
    async fn audit(&self, name: &str) {
        for violation in self.axe_violations(name).await {
            let impact = violation["impact"].as_str().unwrap_or("unknown");
            let nodes: Vec<&str> =
                violation["nodes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let report = format!(
                "{name}: axe {impact} `{}`: {} ({})\n    {}",
                violation["id"].as_str().unwrap_or_default(),
                violation["help"].as_str().unwrap_or_default(),
                violation["url"].as_str().unwrap_or_default(),
                nodes.join("\n    ")
            );
            if matches!(impact, "serious" | "critical") {
                self.fail(report);
            } else {
                let _ = writeln!(std::io::stderr(), "note: {report}");
            }
        }
    }

    /// Walks the page with the Tab key; every element that takes focus
    /// must show it (an outline or a ring).
    async fn check_focus_is_visible(&self, name: &str) {
        const FOCUSED: &str = r#"
            const el = document.activeElement;
            if (!el || el === document.body || el === document.documentElement) return null;
            const style = getComputedStyle(el);
            const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
            const label = (el.innerText || el.value || el.name || '').trim().slice(0, 40);
            return {
              key: el.tagName.toLowerCase() + '#' + el.id + '[' + label + ']',
              visible: outline || style.boxShadow !== 'none',
            };
        "#;
        self.client.execute("document.activeElement && document.activeElement.blur()", vec![]).await.expect("blur");
        let mut seen = Vec::new();
        for _ in 0..40 {
            let tab = KeyActions::new("keyboard".into())
                .then(KeyAction::Down { value: Key::Tab.into() })
                .then(KeyAction::Up { value: Key::Tab.into() });
            self.client.perform_actions(tab).await.expect("press Tab");
            let focused = self.client.execute(FOCUSED, vec![]).await.expect("focused element");
            let Some(key) = focused["key"].as_str() else { break };
            if seen.iter().any(|k| k == key) {
                break;
            }
            if focused["visible"] != true {
                self.fail(format!("{name}: keyboard focus is not visible on {key}"));
            }
            seen.push(key.to_owned());
        }
        // No leftover focus ring in the screenshots.
        self.client.execute("document.activeElement && document.activeElement.blur()", vec![]).await.expect("blur");
        if seen.is_empty() {
            self.fail(format!("{name}: nothing on the page takes keyboard focus"));
        }
    }

    /// Full-page screenshots at desktop width and 360 px wide; at 360 px
    /// nothing may stick out sideways.
    async fn screenshots(&self, name: &str, check_overflow: bool) {
        for (suffix, width) in [("desktop", DESKTOP.0), ("360", PHONE_WIDTH)] {
            self.client.set_window_size(width, DESKTOP.1).await.expect("window size");
            let layout = self
                .client
                .execute(
                    "const root = document.documentElement;
                     return { inner: window.innerWidth, client: root.clientWidth, scroll: root.scrollWidth,
                              height: root.scrollHeight, chrome: window.outerHeight - window.innerHeight };",
                    vec![],
                )
                .await
                .expect("layout");
            let number = |key: &str| layout[key].as_u64().unwrap_or(0) as u32;
            assert_eq!(number("inner"), width, "{name}: the window did not take the width {width}");
            if check_overflow && number("scroll") > number("client") {
                self.fail(format!(
                    "{name}: at {width} px the page is {} px wide and scrolls sideways",
                    number("scroll")
                ));
            }
            let height = number("height").max(600) + number("chrome");
            self.client.set_window_size(width, height).await.expect("window size");
            let png = self.client.screenshot().await.expect("screenshot");
            let path = self.screenshots.join(format!("{name}-{suffix}.png"));
            std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
        self.client.set_window_size(DESKTOP.0, DESKTOP.1).await.expect("window size");
    }

    /// Shows an email's HTML part as a mail client would (from a file, not
    /// the site) and screenshots it as `name-desktop.png` and `name-360.png`.
    pub async fn screenshot_email(&self, name: &str, html: &str) {
        assert!(!html.is_empty(), "{name}: the email has no HTML part");
        let path = self.scratch.path().join(format!("{name}.html"));
        std::fs::write(&path, html).expect("write email html");
        self.open_url(&format!("file://{}", path.display())).await;
        self.screenshots(name, true).await;
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        // chromedriver and the browser it started share a process group;
        // after `finish` closed the session this ends only chromedriver, after
        // a panic it also ends the browser.
        let group = self.driver.id() as libc::pid_t;
        // SAFETY: kill(2) with the negated id of a process group this test
        // created; no memory is involved.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port()
}

fn wait_for_port(driver: &mut Child, port: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        let exited = driver.try_wait().expect("chromedriver status");
        if exited.is_some() || Instant::now() > deadline {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("chromedriver did not listen on port {port} ({exited:?}):\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The link in an email's text part that contains `marker`, e.g.
/// `/verify?token=`.
pub fn link_in(text: &str, marker: &str) -> String {
    text.split_whitespace()
        .find(|word| word.starts_with("http") && word.contains(marker))
        .unwrap_or_else(|| panic!("no {marker} link in:\n{text}"))
        .to_owned()
}
