//! sealflow's own client verbs (`sealflow secrets|workflows|runs`) against a spawned server.

mod common;

use std::io::Write;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{new_master_key, random_secret_value, sealflow_bin, ServerProcess};
use serde_json::{json, Value};

struct Env {
    _dir: tempfile::TempDir,
    server: ServerProcess,
    key: String,
}

fn start() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let master_key = new_master_key();
    let out = sealflow_bin()
        .args([
            "apikey",
            "create",
            "--workspace",
            "acme",
            "--role",
            "admin",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("SEALFLOW_MASTER_KEY", &master_key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let server = ServerProcess::start(dir.path(), &[("SEALFLOW_MASTER_KEY", master_key.as_str())]).unwrap();
    Env {
        _dir: dir,
        server,
        key,
    }
}

impl Env {
    fn cli(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = sealflow_bin();
        cmd.args(args)
            .env("SEALFLOW_URL", &self.server.base)
            .env("SEALFLOW_TOKEN", &self.key)
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.cli(args).output().unwrap();
        decode(out)
    }
}

fn decode(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn secrets_set_reads_the_value_from_stdin_and_it_appears_in_no_argv_output_or_log() {
    let env = start();
    let value = random_secret_value();
    let mut child = env
        .cli(&["secrets", "set", "CRM_KEY", "--allowed-host", "api.crm.example"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // While the client waits for stdin, its command line is all there is to see.
    // (Right after spawn the child may not have exec'd yet; wait until it shows its own argv.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let cmdline = loop {
        let raw = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        if text.contains("CRM_KEY") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the client never showed its argv: {text}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(!cmdline.contains(&value), "the value is in argv: {cmdline}");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{value}\n").as_bytes())
        .unwrap();
    let (code, out, err) = decode(child.wait_with_output().unwrap());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("CRM_KEY saved"), "{out}");

    let (code, listed, err) = env.run(&["secrets", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        listed.contains("CRM_KEY") && listed.contains("api.crm.example"),
        "{listed}"
    );
    let (code, json_out, _) = env.run(&["secrets", "list", "--output", "json"]);
    assert_eq!(code, 0);
    let parsed: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(parsed["secrets"][0]["name"], "CRM_KEY");

    // That the stored value is intact is the secrets API's own test; here: no trace of it in
    // anything the client or the server printed.
    let (code, out, err) = env.run(&["secrets", "delete", "CRM_KEY"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = env.run(&["secrets", "delete", "CRM_KEY"]);
    assert_eq!(code, 4, "a second delete is not found: {err}");
    let log = env.server.stop();
    for text in [&out, &err, &listed, &json_out, &log] {
        assert!(!text.contains(&value), "the value leaked: {text}");
    }
    assert!(log.contains("sealflow listening"), "the log was captured: {log}");
}

#[test]
fn workflows_apply_creates_then_updates_by_name_and_run_wait_completes() {
    let env = start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wf.json");
    let def = |greeting: &str| {
        json!({"name": "hello", "steps": [{"id": "say", "type": "transform",
               "config": {"output": {"text": format!("{greeting} {{{{input.who}}}}")}}}]})
    };
    std::fs::write(&file, def("hi").to_string()).unwrap();
    let path = file.to_str().unwrap();
    let (code, out, err) = env.run(&["workflows", "apply", "-f", path]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created"), "{out}");
    std::fs::write(&file, def("hello").to_string()).unwrap();
    let (code, out, err) = env.run(&["workflows", "apply", "-f", path, "--output", "json"]);
    assert_eq!(code, 0, "{err}");
    let saved: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(saved["version"], 2, "apply by the same name updates: {saved}");
    let id = saved["id"].as_str().unwrap().to_owned();

    let (code, listed, _) = env.run(&["workflows", "list"]);
    assert_eq!(code, 0);
    assert!(
        listed.lines().next().unwrap().starts_with("ID") && listed.contains(&id),
        "{listed}"
    );
    assert_eq!(listed.lines().count(), 2, "one workflow, not two: {listed}");
    let (code, got, _) = env.run(&["workflows", "get", &id]);
    assert_eq!(code, 0);
    assert!(got.contains("say") && got.contains("transform"), "{got}");

    let (code, out, err) = env.run(&[
        "workflows",
        "run",
        &id,
        "--input",
        r#"{"who": "ada"}"#,
        "--wait",
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let run: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(run["status"], "completed");
    assert_eq!(run["steps"][0]["output"]["text"], "hello ada");
    let (code, runs, _) = env.run(&["runs", "list"]);
    assert_eq!(code, 0);
    assert!(
        runs.contains(run["id"].as_str().unwrap()) && runs.contains("completed"),
        "{runs}"
    );
    let (code, one, _) = env.run(&["runs", "get", run["id"].as_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(one.contains("say") && one.contains("completed"), "{one}");
}

#[test]
fn runs_watch_follows_the_steps_and_ends_when_the_run_ends() {
    let env = start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wf.json");
    std::fs::write(
        &file,
        json!({"name": "slow", "steps": [
            {"id": "wait", "type": "delay", "config": {"seconds": 2}},
            {"id": "done", "type": "transform", "config": {"output": {"ok": true}}}]})
        .to_string(),
    )
    .unwrap();
    let (code, out, err) = env.run(&[
        "workflows",
        "apply",
        "-f",
        file.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let id = serde_json::from_str::<Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, out, err) = env.run(&["workflows", "run", &id, "--output", "json"]);
    assert_eq!(code, 0, "{err}");
    let run_id = serde_json::from_str::<Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let started = Instant::now();
    let mut child = env
        .cli(&["runs", "watch", &run_id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "runs watch did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(status.success(), "{out}");
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "watch ended before the delay did"
    );
    assert!(out.contains("step done completed"), "{out}");
    assert!(
        out.trim_end().ends_with(&format!("run {run_id} completed")),
        "{out}"
    );
}

#[test]
fn exit_codes_are_2_invalid_3_auth_4_not_found_and_1_otherwise() {
    let env = start();
    let (code, _, err) = env.run(&["workflows", "run", "wf_x", "--input", "not json"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = env.run(&["secrets", "set"]);
    assert_eq!(code, 2, "a usage error: {err}");
    let (code, _, err) = env.run(&["runs", "get", "run_missing"]);
    assert_eq!(code, 4, "{err}");
    let (code, _, err) = env
        .cli(&["secrets", "list"])
        .env(
            "SEALFLOW_TOKEN",
            "sf_live_0000000000000000000000000000000000000000",
        )
        .output()
        .map(decode)
        .unwrap();
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = env
        .cli(&["secrets", "list"])
        .env_remove("SEALFLOW_TOKEN")
        .output()
        .map(decode)
        .unwrap();
    assert_eq!(code, 3, "no token at all: {err}");
    let (code, _, err) = env
        .cli(&["secrets", "list", "--url", "http://127.0.0.1:9"])
        .output()
        .map(decode)
        .unwrap();
    assert_eq!(code, 1, "an unreachable server: {err}");
    let (code, _, err) = env
        .cli(&["secrets", "set", "BAD NAME"])
        .stdin(Stdio::piped())
        .output()
        .map(decode)
        .unwrap();
    assert_eq!(code, 2, "an empty value is invalid: {err}");
}
