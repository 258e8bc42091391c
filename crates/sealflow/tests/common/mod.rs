//! Test harness: a real sealflow server on a random loopback port over a fresh SQLite file,
//! either in this process ([`TestApp`]) or as the real binary ([`ServerProcess`]) when a test
//! needs the server's own log output or exit status.

#![allow(dead_code)] // each test file uses a different part of the harness

pub mod pg;
pub mod raw_receiver;
pub mod receiver;
pub mod seed;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sealflow::auth::issue_api_key;
use sealflow::config::{Config, MasterKeySource};
use sealflow::startup::Application;
use sealflow::store::{Role, Store};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;

/// A fresh base64 master key.
pub fn new_master_key() -> String {
    sealflow::vault::generate_master_key_base64().to_string()
}

/// A random printable value that cannot occur by chance anywhere else.
pub fn random_secret_value() -> String {
    format!("sv-{}-end", sealflow::ids::random_base62(40))
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub dir: TempDir,
    /// An admin key of workspace `acme`.
    pub admin_key: String,
    pub master_key: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with a config adjusted by `tweak` (limits, JWT settings…).
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let master_key = new_master_key();
        let mut config = Config::for_data_dir(
            dir.path(),
            MasterKeySource::Inline(SecretString::from(master_key.clone())),
        );
        // Idle workers look for due runs often, so tests do not wait on the poll interval.
        config.engine.poll = Duration::from_millis(20);
        tweak(&mut config);
        let app = Application::build(config).await.expect("app builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let store = app.state().store.clone();
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        let mut this = TestApp {
            base,
            client: reqwest::Client::new(),
            store,
            dir,
            admin_key: String::new(),
            master_key,
            shutdown: Some(tx),
            server: Some(server),
        };
        this.admin_key = this.api_key("acme", Role::Admin).await;
        this
    }

    /// Issues a key straight into the store (as `sealflow apikey create` does).
    pub async fn api_key(&self, workspace: &str, role: Role) -> String {
        let ws = self.store.ensure_workspace(workspace).await.expect("workspace");
        let issued = issue_api_key(&ws.id, "test", role);
        self.store
            .insert_api_key(&issued.record, "test")
            .await
            .expect("insert key");
        issued.key.expose_secret().to_owned()
    }

    /// Creates a user with `role` in `workspace` (as `sealflow user create` does); returns its id.
    pub async fn user(&self, email: &str, password: &str, workspace: &str, role: Role) -> String {
        let ws = self.store.ensure_workspace(workspace).await.expect("workspace");
        let users = sealflow::domain::users::UsersService::new(
            self.store.clone(),
            sealflow::auth::Passwords::default(),
        );
        let (user, _) = users
            .add_to_workspace(email, Some(SecretString::from(password)), &ws.id, role)
            .await
            .expect("add user");
        user.id
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("sealflow.db")
    }

    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        let res = self
            .client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request");
        split(res).await
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        let res = self
            .client
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request");
        split(res).await
    }

    pub async fn delete(&self, path: &str, key: &str, body: Option<&Value>) -> (u16, Value) {
        let mut req = self.client.delete(self.url(path)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(b);
        }
        split(req.send().await.expect("request")).await
    }

    /// Creates a workflow and returns its id.
    pub async fn workflow(&self, key: &str, body: Value) -> String {
        let (status, wf) = self.post("/api/workflows", key, &body).await;
        assert_eq!(status, 201, "{wf}");
        wf["id"].as_str().unwrap().to_owned()
    }

    /// Starts a run and waits (server side, `?wait=`) up to `secs` for it to finish.
    pub async fn run_and_wait(&self, key: &str, workflow_id: &str, input: Value, secs: u64) -> Value {
        let (status, run) = self
            .post(
                &format!("/api/workflows/{workflow_id}/run?wait={secs}"),
                key,
                &serde_json::json!({"input": input}),
            )
            .await;
        assert_eq!(status, 201, "{run}");
        run
    }

    /// Polls a run until it has finished (or panics after `secs`).
    pub async fn wait_finished(&self, key: &str, run_id: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (_, run) = self.get(&format!("/api/workflows/runs/{run_id}"), key).await;
            if matches!(run["status"].as_str(), Some("completed" | "failed" | "cancelled")) {
                return run;
            }
            assert!(Instant::now() < deadline, "run did not finish in {secs}s: {run}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Names of the workspace's secrets, as the API lists them.
    pub async fn secret_names(&self, key: &str) -> Vec<String> {
        let (status, body) = self.get("/api/workflows/secrets", key).await;
        assert_eq!(status, 200, "{body}");
        body["secrets"]
            .as_array()
            .expect("secrets array")
            .iter()
            .map(|s| s["name"].as_str().expect("name").to_owned())
            .collect()
    }

    /// Stops the server, waits for it to finish, and closes the pool so the files are quiet.
    pub async fn stop(self) -> TempDir {
        let TestApp {
            store,
            dir,
            shutdown,
            server,
            ..
        } = self;
        if let Some(tx) = shutdown {
            let _ = tx.send(());
        }
        if let Some(server) = server {
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
        drop(store);
        dir
    }
}

/// Status and JSON body of a response (`null` when the body is empty or not JSON).
pub async fn split(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Asserts the spec's error shape and returns the message.
pub fn assert_error_shape(body: &Value, code: &str) -> String {
    let message = body["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {body}"));
    assert_eq!(
        body["error"].as_str(),
        Some(message),
        "error and message differ: {body}"
    );
    assert_eq!(body["code"].as_str(), Some(code), "code: {body}");
    message.to_owned()
}

/// True if `needle` occurs anywhere in the bytes of any file directly in `dir`.
pub fn dir_contains(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("read file");
            if bytes.windows(needle.len()).any(|w| w == needle) {
                hits.push(path);
            }
        }
    }
    hits
}

/// The real `sealflow` binary.
pub fn sealflow_bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sealflow"));
    for (k, _) in std::env::vars() {
        if k.starts_with("SEALFLOW_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// `sealflow apikey create` for an admin of workspace `acme` in `dir`; the key is the last stdout
/// line.
pub fn admin_key(dir: &Path, master_key: &str) -> String {
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
        .arg(dir)
        .env("SEALFLOW_MASTER_KEY", master_key)
        .output()
        .expect("run sealflow apikey create");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned()
}

/// A `sealflow serve` process whose stderr (its log) is collected.
pub struct ServerProcess {
    child: Child,
    pub base: String,
    pub log: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// Starts `sealflow serve` on a free port with `args`/`envs`; waits until it listens.
    pub fn start(data_dir: &Path, envs: &[(&str, &str)]) -> Result<Self, String> {
        Self::start_command(sealflow_bin(), data_dir, envs)
    }

    /// Like [`start`](Self::start), but under the file-creation mask `umask` (e.g. `"022"`).
    pub fn start_with_umask(umask: &str, data_dir: &Path, envs: &[(&str, &str)]) -> Result<Self, String> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_sealflow"));
        for (k, _) in std::env::vars() {
            if k.starts_with("SEALFLOW_") {
                cmd.env_remove(k);
            }
        }
        Self::start_command(cmd, data_dir, envs)
    }

    fn start_command(mut cmd: Command, data_dir: &Path, envs: &[(&str, &str)]) -> Result<Self, String> {
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn sealflow");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("address=").nth(1) {
                    let _ = tx.send(
                        addr.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .trim_matches('"')
                            .to_owned(),
                    );
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(addr) = rx.recv_timeout(Duration::from_millis(50)) {
                return Ok(Self {
                    child,
                    base: format!("http://{addr}"),
                    log,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100)); // let the reader drain
                return Err(format!("exited with {status}:\n{}", log.lock().unwrap()));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("did not start in time:\n{}", log.lock().unwrap()));
            }
        }
    }

    /// The server's process id (to read its `/proc` entries).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL (a crash: nothing is flushed or finished).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for a clean exit; returns the whole log.
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "sealflow exited with {status}");
                std::thread::sleep(Duration::from_millis(100));
                return self.log.lock().unwrap().clone();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("sealflow did not stop on SIGTERM");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Base64 of the value (one of the encodings a leak could take).
pub fn b64(value: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(value)
}
