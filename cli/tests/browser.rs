//! The page in a real browser: headless Chromium (Debian's `chromium`) driven
//! through its DevTools protocol over a pipe, clicking "Retry compensations"
//! on a parked saga without and with the token, and a screenshot of a saga
//! page.
//!
//! Chromium is found at `$SAGAFLOW_CHROMIUM` or as `chromium` on the PATH.
//! Without it the test says it skipped; with `CI` set, a missing browser fails
//! it. `SAGAFLOW_UPDATE_SCREENSHOT=1` writes the screenshot to
//! `docs/saga-page.png` (checked in); otherwise it goes to a temporary file.

mod common;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Server, fill, sagaflow, stdout};
use serde_json::{Value, json};

/// The flags Chromium needs here: no sandbox (containers), nothing fetched
/// from the network, a fresh profile.
fn flags(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
    ]
    .iter()
    .map(|f| f.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// The browser, or `None` (and a line saying so) when it is absent and not
/// in CI.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("SAGAFLOW_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("chromium"))
                    .find(|p| p.is_file())
            })
        })
        .filter(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but Chromium is missing: install Debian's `chromium` or set SAGAFLOW_CHROMIUM"
        );
        eprintln!("skipped: no Chromium (install `chromium` or set SAGAFLOW_CHROMIUM)");
    }
    found
}

/// A browser driven over `--remote-debugging-pipe`: commands go to its fd 3,
/// answers and events come from its fd 4, each message ended by a NUL.
struct Browser {
    child: Child,
    to: std::io::PipeWriter,
    from: mpsc::Receiver<Value>,
    events: VecDeque<Value>,
    next_id: u64,
    session: Option<String>,
}

impl Browser {
    fn start(chromium: &Path, profile: &Path) -> Browser {
        let (child_reads, to) = std::io::pipe().unwrap();
        let (from, child_writes) = std::io::pipe().unwrap();
        let (r, w): (OwnedFd, OwnedFd) = (child_reads.into(), child_writes.into());
        let (r_fd, w_fd) = (r.as_raw_fd(), w.as_raw_fd());
        let mut command = Command::new(chromium);
        command
            .args(flags(profile))
            .arg("--remote-debugging-pipe")
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and
        // exec. The pipe ends are first moved above 10, so that neither lands
        // on 3 or 4 before both are placed there.
        unsafe {
            command.pre_exec(move || {
                let r_high = libc::fcntl(r_fd, libc::F_DUPFD, 10);
                let w_high = libc::fcntl(w_fd, libc::F_DUPFD, 10);
                if r_high < 0
                    || w_high < 0
                    || libc::dup2(r_high, 3) < 0
                    || libc::dup2(w_high, 4) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = common::spawn(&mut command);
        // The child has its copies; ours would keep the pipes open past it.
        drop((r, w));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(from);
            loop {
                let mut message = Vec::new();
                match reader.read_until(0, &mut message) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        message.pop();
                        if let Ok(value) = serde_json::from_slice::<Value>(&message)
                            && tx.send(value).is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
        Browser {
            child,
            to,
            from: rx,
            events: VecDeque::new(),
            next_id: 1,
            session: None,
        }
    }

    fn receive(&mut self, what: &str) -> Value {
        self.from
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("Chromium did not answer {what} within 30 s"))
    }

    /// Sends one command (to the page's session once attached) and waits for
    /// its result; events that come first are kept for `event`.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        loop {
            let answer = self.receive(method);
            if answer["id"] == json!(id) {
                assert!(answer.get("error").is_none(), "{method}: {answer}");
                return answer["result"].clone();
            }
            self.events.push_back(answer);
        }
    }

    /// Waits for the event `method`.
    fn event(&mut self, method: &str) -> Value {
        if let Some(at) = self.events.iter().position(|e| e["method"] == method) {
            return self.events.remove(at).unwrap();
        }
        loop {
            let message = self.receive(method);
            if message["method"] == method {
                return message;
            }
            self.events.push_back(message);
        }
    }

    /// Opens a tab, attaches to it and sizes its viewport.
    fn open_tab(&mut self) {
        let target = self.call("Target.createTarget", json!({ "url": "about:blank" }));
        let attached = self.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        self.session = attached["sessionId"].as_str().map(str::to_owned);
        self.call("Page.enable", json!({}));
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1280, "height": 2400, "deviceScaleFactor": 1, "mobile": false }),
        );
    }

    fn navigate(&mut self, url: &str) {
        self.events.clear();
        self.call("Page.navigate", json!({ "url": url }));
        self.event("Page.loadEventFired");
    }

    fn node(&mut self, selector: &str) -> Value {
        let root = self.call("DOM.getDocument", json!({ "depth": 0 }));
        let found = self.call(
            "DOM.querySelector",
            json!({ "nodeId": root["root"]["nodeId"], "selector": selector }),
        );
        assert_ne!(found["nodeId"], json!(0), "no {selector} on the page");
        found["nodeId"].clone()
    }

    /// Focuses the field and types `text` into it, as a keyboard would.
    fn type_into(&mut self, selector: &str, text: &str) {
        let node = self.node(selector);
        self.call("DOM.focus", json!({ "nodeId": node }));
        self.call("Input.insertText", json!({ "text": text }));
    }

    /// A mouse click in the middle of the element, then the page it loads.
    fn click(&mut self, selector: &str) {
        let node = self.node(selector);
        self.call("DOM.scrollIntoViewIfNeeded", json!({ "nodeId": node }));
        let model = self.call("DOM.getBoxModel", json!({ "nodeId": node }));
        let quad: Vec<f64> = model["model"]["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let x = (quad[0] + quad[2] + quad[4] + quad[6]) / 4.0;
        let y = (quad[1] + quad[3] + quad[5] + quad[7]) / 4.0;
        self.events.clear();
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            );
        }
        self.event("Page.loadEventFired");
    }

    fn html(&mut self) -> String {
        let root = self.call("DOM.getDocument", json!({ "depth": 0 }));
        let html = self.call(
            "DOM.getOuterHTML",
            json!({ "nodeId": root["root"]["nodeId"] }),
        );
        html["outerHTML"].as_str().unwrap().to_owned()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_in_store(store: &Path, id: &str) -> String {
    let output = sagaflow(&["show", id, "--store", store.to_str().unwrap(), "--json"]);
    let saga: Value = serde_json::from_str(&stdout(&output)).unwrap();
    saga["status"].as_str().unwrap().to_owned()
}

#[test]
fn retry_compensations_is_clicked_in_chromium_without_then_with_the_token() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (path, ids) = fill(dir.path());
    let server = Server::start(&path, &["--token", "s3cret"]);
    let profile = tempfile::tempdir().unwrap();
    let mut browser = Browser::start(&chromium, profile.path());
    browser.open_tab();
    let page = format!("{}/saga/{}", server.base, ids.parked);

    // Without the token: refused, and the saga stays parked.
    browser.navigate(&page);
    browser.type_into(
        "#retry-compensations input[name=note]",
        "night shift: airline is back",
    );
    browser.click("#retry-compensations button");
    let refused = browser.html();
    assert!(
        refused.contains("the token is missing or wrong"),
        "{refused}"
    );
    browser.navigate(&page);
    assert!(
        browser
            .html()
            .contains("<strong id=\"status\">parked</strong>")
    );

    // With the token: sent back to compensating.
    browser.type_into(
        "#retry-compensations input[name=note]",
        "night shift: airline is back",
    );
    browser.type_into("#retry-compensations input[name=token]", "s3cret");
    browser.click("#retry-compensations button");
    let done = browser.html();
    assert!(done.contains("Sent back to compensating"), "{done}");
    assert!(
        done.contains("<strong id=\"status\">running</strong>"),
        "{done}"
    );
    assert!(done.contains("night shift: airline is back"));
    // The server holds the store's lock; once it is gone, the store says so too.
    drop(browser);
    drop(server);
    assert_eq!(status_in_store(&path, &ids.parked.to_string()), "running");
}

#[test]
fn a_screenshot_of_a_saga_page() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (path, ids) = fill(dir.path());
    let server = Server::start(&path, &["--token", "s3cret"]);
    let profile = tempfile::tempdir().unwrap();
    let out = match std::env::var_os("SAGAFLOW_UPDATE_SCREENSHOT") {
        Some(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/saga-page.png"),
        None => dir.path().join("saga-page.png"),
    };
    let mut shot = Command::new(&chromium);
    shot.args(flags(profile.path()))
        .arg("--window-size=1100,1500")
        .arg(format!("--screenshot={}", out.display()))
        .arg(format!("{}/saga/{}", server.base, ids.parked_again))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let status = common::spawn(&mut shot).wait().unwrap();
    assert!(status.success());
    let png = std::fs::read(&out).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(png.len() > 20_000, "a blank page? {} bytes", png.len());
}
