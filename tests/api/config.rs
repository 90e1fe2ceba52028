//! The binary's start-up checks, run as an operator would run it.

use std::process::Command;

fn usher(env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_usher"));
    command.current_dir(dir.path()).env_remove("DATABASE_URL").env("USHER_BIND", "127.0.0.1:0");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run usher")
}

#[test]
fn a_bad_duration_stops_start_up_with_one_line_naming_the_setting() {
    let output = usher(&[("USHER_VERIFY_TOKEN_TTL", "soon")]);

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("verify-token-ttl"), "{stderr}");
}

#[test]
fn a_bad_boolean_or_number_is_refused_too() {
    for (name, value, flag) in [
        ("USHER_REQUIRE_ADMIN_APPROVAL", "perhaps", "require-admin-approval"),
        ("USHER_PASSWORD_MIN_LENGTH", "4", "password-min-length"),
    ] {
        let output = usher(&[(name, value)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(flag), "{name}: {stderr}");
    }
}

#[test]
fn postgres_requires_a_session_key() {
    let output = usher(&[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")]);

    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("USHER_SESSION_KEY"), "{stderr}");
}

#[test]
fn a_short_session_key_is_refused() {
    let output = usher(&[("USHER_SESSION_KEY", "too short")]);

    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 32 bytes"));
}

#[test]
fn postgres_requires_an_encryption_key_of_its_own() {
    let session_key = ("USHER_SESSION_KEY", "a session key of well over thirty-two bytes");
    let postgres = ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none");

    let missing = usher(&[postgres, session_key]);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("USHER_ENCRYPTION_KEY: required with PostgreSQL"), "{stderr}");

    let reused = usher(&[postgres, session_key, ("USHER_ENCRYPTION_KEY", session_key.1)]);
    assert_eq!(reused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&reused.stderr).contains("must differ from USHER_SESSION_KEY"));
    let short = usher(&[session_key, ("USHER_ENCRYPTION_OLD_KEYS", "short")]);
    assert!(String::from_utf8_lossy(&short.stderr).contains("every key must be at least 32 bytes"));
}
