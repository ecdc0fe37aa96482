//! Password hashing: argon2id on a few threads of its own, and a queue in
//! front of them so a flood of sign-ins waits cheaply.

use std::sync::Mutex;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::domain::Password;
use crate::error::{AppError, AppResult};

fn argon2() -> Argon2<'static> {
    // argon2id, m = 19456 KiB, t = 2, p = 1: ~20 ms per check, OWASP's floor.
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// How many argon2 computations run at once: one per core (at least two).
/// Each holds 19 MiB while it runs, and more at once would not finish sooner.
fn argon2_limit() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(2)
    })
}

type Argon2Job = Box<dyn FnOnce() + Send>;

/// Runs `work` on one of `argon2_limit()` threads kept for argon2 and waits
/// for it. Blocking. The allocator keeps the 19 MiB a thread once used, so
/// argon2 on whichever blocking thread was free grew the process by about
/// that much per thread the blocking pool ever had: 200 sign-ups at once
/// left it 3.7 GiB larger, 200 wrong passwords at once (no account needed)
/// 3.7 GiB more. On a few dedicated threads it stays under 300 MiB.
fn on_argon2_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    static JOBS: std::sync::OnceLock<Mutex<std::sync::mpsc::Sender<Argon2Job>>> =
        std::sync::OnceLock::new();
    let jobs = JOBS.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Argon2Job>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        for i in 0..argon2_limit() {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => break,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start an argon2 thread");
            }
        }
        Mutex::new(tx)
    });
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
    let job: Argon2Job = Box::new(move || {
        let _ = done_tx.send(work());
    });
    let sent = jobs.lock().unwrap_or_else(|p| p.into_inner()).send(job);
    // No argon2 thread is left to take it: do the work here rather than fail.
    if let Err(std::sync::mpsc::SendError(job)) = sent {
        job();
    }
    done_rx.recv().ok()
}

/// Sign-ins queue here, on the async side, before taking a blocking thread:
/// a flood of them then waits cheaply instead of filling the blocking pool
/// that database work also needs.
pub(super) async fn turn() -> Option<tokio::sync::OwnedSemaphorePermit> {
    static TURNS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Semaphore>> =
        std::sync::OnceLock::new();
    TURNS
        .get_or_init(|| std::sync::Arc::new(tokio::sync::Semaphore::new(argon2_limit())))
        .clone()
        .acquire_owned()
        .await
        .ok()
}

/// Blocking (~20 ms): call from `spawn_blocking`.
pub(super) fn hash(password: &Password) -> AppResult<String> {
    let password = password.as_str().to_string();
    on_argon2_thread(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AppError::internal("hashing a password", e))
    })
    .unwrap_or_else(|| Err(AppError::Internal("the argon2 thread stopped".into())))
}

/// Blocking (~20 ms): call from `spawn_blocking`.
pub(super) fn verify(phc: &str, password: &str) -> bool {
    let (phc, password) = (phc.to_string(), password.to_string());
    on_argon2_thread(move || {
        PasswordHash::new(&phc)
            .map(|hash| argon2().verify_password(password.as_bytes(), &hash).is_ok())
            .unwrap_or(false)
    })
    .unwrap_or(false)
}

/// A hash to verify against when the user does not exist, so that an
/// unknown name costs as much time as a wrong password.
pub(super) fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        on_argon2_thread(|| {
            let salt = SaltString::generate(&mut OsRng);
            argon2()
                .hash_password(b"decoy password", &salt)
                .map(|h| h.to_string())
                .unwrap_or_default()
        })
        .unwrap_or_default()
    })
}
