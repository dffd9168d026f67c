//! The shipped systemd unit: `systemd-analyze verify` passes and the offline security
//! exposure score is 2.0 or lower.

use std::path::Path;
use std::process::Command;

const UNIT: &str = include_str!("../systemd/overseer.service");

fn unit_for_this_build(dir: &Path) -> std::path::PathBuf {
    // verify checks that ExecStart's program exists: point it at the binary under test.
    let text = UNIT.replace("/usr/local/bin/overseer", env!("CARGO_BIN_EXE_overseer"));
    let path = dir.join("overseer.service");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn unit_verifies_and_scores_two_or_lower() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_this_build(dir.path());

    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian package systemd) is needed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify failed: {stderr}");
    // verify also prints warnings (unknown keys, bad values) without failing: none allowed
    // for our unit.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("overseer.service"))
        .collect();
    assert!(ours.is_empty(), "warnings about the unit: {ours:#?}");

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score in: {text}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse {line}"));
    println!("systemd-analyze security: {score}");
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{text}");
}

#[test]
fn unit_keeps_the_contract_with_the_binary() {
    for needle in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "StateDirectory=overseer",
        "EnvironmentFile=",
        " serve",
    ] {
        assert!(UNIT.contains(needle), "unit lacks {needle}");
    }
    // Chromium's JIT needs writable+executable memory.
    assert!(!UNIT.contains("MemoryDenyWriteExecute=yes"));
    let example = include_str!("../systemd/overseer.env.example");
    assert!(example.contains("DATABASE_URL="));
}
