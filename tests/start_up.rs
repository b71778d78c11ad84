//! The binary's own start-up (src/main.rs has a C entry point, not Rust's
//! runtime): what Rust's runtime did that the tool relies on still holds.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

#[test]
fn a_closed_stdout_pipe_is_an_error_not_a_sigpipe_kill() {
    let dir = tempfile::tempdir().unwrap();
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read); // nobody will read: every write gets EPIPE (or SIGPIPE)
    let out = Command::new(common::BIN)
        .arg("--root")
        .arg(dir.path())
        .arg("status")
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), None, "killed: {:?}", out.status);
    // As under Rust's main: the failed print panics, and a panic exits 101.
    assert_eq!(out.status.code(), Some(101), "{:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("failed printing to stdout"), "{stderr}");
}

#[test]
fn policy_rc_d_by_its_link_name_decides_before_any_cli_parsing() {
    // A link named policy-rc.d: the decision's syntax error (103), not clap's
    // (2). The syntax is checked before the state at / is read.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("policy-rc.d");
    std::os::unix::fs::symlink(common::BIN, &link).unwrap();
    let out = Command::new(&link).arg("--frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(103), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("policy-rc.d: unknown option '--frobnicate'"),
        "{stderr}"
    );
}
