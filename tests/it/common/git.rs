//! Git for tests: one-shot commands on a vault, `git fsck`, and a scratch
//! home where clones run with no user or system configuration leaking in.

use std::path::{Path, PathBuf};
use std::process::Output;

use super::{TestApp, text};

/// Runs `git` with `args` in `dir` when git is installed; None otherwise.
pub fn git(dir: &Path, args: &[&str]) -> Option<std::process::Output> {
    std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()
}

/// Like [`git`], asserting it ran and succeeded; returns stdout.
pub fn git_ok(dir: &Path, args: &[&str]) -> String {
    let out = git(dir, args).expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text(&out.stdout)
}

/// `git fsck` of a vault, strict: Err with its output unless it exits 0 and
/// says nothing but notices (an empty vault's "HEAD points to an unborn
/// branch"). Dangling objects are fine: a refused or crashed write leaves some.
pub fn git_fsck(vault: &Path) -> Result<(), String> {
    let out = git(
        vault,
        &[
            "fsck",
            "--full",
            "--strict",
            "--no-dangling",
            "--no-progress",
        ],
    )
    .ok_or("git fsck did not run")?;
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let problems = said
        .lines()
        .any(|l| !l.trim().is_empty() && !l.starts_with("notice:"));
    if !out.status.success() || problems {
        return Err(format!(
            "git fsck {}: {}\n{said}",
            vault.display(),
            out.status
        ));
    }
    Ok(())
}

/// A scratch place for clones, with its own `HOME` so no user or system
/// Git configuration leaks in, and no credential prompt or proxy either.
pub struct GitHome {
    dir: tempfile::TempDir,
}

impl Default for GitHome {
    fn default() -> Self {
        Self::new()
    }
}

impl GitHome {
    pub fn new() -> GitHome {
        let ws = GitHome {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        std::fs::create_dir_all(ws.home()).expect("home");
        ws
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// `name` inside the scratch place (`""` for the place itself).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `git args…` in `dir` off the async runtime (the server under
    /// test shares the runtime, so a blocking wait would starve it).
    pub async fn git<S: AsRef<str>>(&self, dir: &Path, args: &[S]) -> Output {
        self.git_env(dir, args, &[]).await
    }

    /// Like [`git`](Self::git), with `env` set as well (`GIT_TRACE_CURL`…).
    pub async fn git_env<S: AsRef<str>>(
        &self,
        dir: &Path,
        args: &[S],
        env: &[(&str, &str)],
    ) -> Output {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let home = self.home();
        let dir = dir.to_path_buf();
        let args: Vec<String> = args.iter().map(|a| a.as_ref().to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let mut cmd = std::process::Command::new("git");
            cmd.arg("-C").arg(&dir).args(&args);
            cmd.env("HOME", &home)
                .env("XDG_CONFIG_HOME", home.join(".config"))
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_TERMINAL_PROMPT", "0")
                .env("GIT_ASKPASS", "/bin/false")
                .env("NO_PROXY", "*")
                .env("no_proxy", "*")
                .env_remove("http_proxy")
                .env_remove("https_proxy")
                .env_remove("HTTP_PROXY")
                .env_remove("HTTPS_PROXY")
                .env_remove("GIT_DIR");
            cmd.envs(env);
            cmd.output().expect("run git")
        })
        .await
        .expect("git task")
    }

    /// Like [`git`](Self::git), asserting success; returns stdout.
    pub async fn git_ok<S: AsRef<str>>(&self, dir: &Path, args: &[S]) -> String {
        let out = self.git(dir, args).await;
        let shown: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        assert!(
            out.status.success(),
            "git {shown:?} failed:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Like [`git`](Self::git), asserting failure; returns stdout and stderr.
    pub async fn git_fails(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.git(dir, args).await;
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!out.status.success(), "git {args:?} should fail:\n{said}");
        said
    }

    /// Commits every tracked change in `dir` (as a local author), for a
    /// push the server must refuse.
    pub async fn commit_all(&self, dir: &Path, message: &str) {
        self.git_ok(
            dir,
            &[
                "-c",
                "user.name=A",
                "-c",
                "user.email=a@x",
                "commit",
                "-qam",
                message,
            ],
        )
        .await;
    }

    /// Clones the vault over HTTP as `user`, credentials in the URL.
    pub async fn clone_as(&self, app: &TestApp, user: &str, secret: &str) -> PathBuf {
        let target = self.path(&format!("clone-{user}"));
        let url = vault_url(&app.base, user, secret);
        let here = self.path("");
        self.git_ok(&here, &["clone", "-q", &url, target.to_str().unwrap()])
            .await;
        target
    }
}

/// The vault's clone URL at `base` with `user:secret` in it.
pub fn vault_url(base: &str, user: &str, secret: &str) -> String {
    let host = base.trim_start_matches("http://");
    format!("http://{user}:{secret}@{host}/vault.git")
}
