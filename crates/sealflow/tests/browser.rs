//! The dashboard in a real browser: spawns the real `sealflow` binary, creates users with
//! `sealflow user create` (password on stdin), then runs `e2e/dashboard.test.mjs` (playwright-core
//! driving Debian's `/usr/bin/chromium`) under `node --test`. `scripts/test` installs Chromium,
//! Node and the e2e packages; a missing one fails this test rather than skipping it.
//!
//! Screenshots go to `$SEALFLOW_SCREENSHOT_DIR` when set (`docs/screenshots` for the README),
//! else to a temporary folder.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{sealflow_bin, ServerProcess};

const PASSWORD: &str = "browser test password";

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e")
}

fn create_user(data_dir: &Path, email: &str, role: &str) {
    let mut child = sealflow_bin()
        .args([
            "user",
            "create",
            "--email",
            email,
            "--workspace",
            "acme",
            "--role",
            role,
            "--data-dir",
        ])
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sealflow user create");
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "user create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let e2e = e2e_dir();
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: scripts/test installs it (apt-get install -y chromium)"
    );
    assert!(
        e2e.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci` in e2e/ (scripts/test does)"
    );
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), "admin@example.com", "admin");
    create_user(dir.path(), "viewer@example.com", "readonly");
    // The chat template's webhook goes to a receiver the test script runs on loopback.
    let server = ServerProcess::start(dir.path(), &[("SEALFLOW_EGRESS_ALLOW", "127.0.0.1/32")])
        .expect("server starts");
    let shots = std::env::var("SEALFLOW_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| dir.path().join("screenshots"));
    std::fs::create_dir_all(&shots).unwrap();

    let mut child = Command::new("node")
        .args(["--test", "--test-reporter=spec", "dashboard.test.mjs"])
        .current_dir(&e2e)
        .env("SEALFLOW_BASE", &server.base)
        .env("ADMIN_EMAIL", "admin@example.com")
        .env("READONLY_EMAIL", "viewer@example.com")
        .env("PASSWORD", PASSWORD)
        .env("SCREENSHOT_DIR", &shots)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (scripts/test installs it)");
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the browser tests did not finish in 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut out).unwrap();
    println!("{out}");
    assert!(
        status.success(),
        "browser tests failed:\n{out}\nserver log:\n{}",
        server.log.lock().unwrap()
    );
    assert!(out.contains("fail 0") && out.contains("pass 8"), "{out}");
    for name in [
        "sign-in",
        "runs",
        "run",
        "workflows",
        "workflow-editor",
        "secrets",
        "keys",
        "runs-360px",
    ] {
        assert!(shots.join(format!("{name}.png")).exists(), "screenshot {name}");
    }
}
