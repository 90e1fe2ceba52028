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
