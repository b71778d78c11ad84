//! Running external commands: by argv (never through a shell), looked up inside
//! `--root` first, with their output streamed line by line to the log.

use crate::base::state::PhaseKind;
use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use crate::base::fsx::Root;
use crate::base::logging;

/// `word` as one word of a command line that an operator copies into a
/// POSIX shell (the commands of findings and messages): as it is when no
/// shell treats any of its characters specially; else in double quotes
/// (readable inside the single-quoted commands of our messages) when it
/// holds none of `$`, `` ` ``, `\`, `"`, `!`; else in single quotes, each `'`
/// written `'\''`.
pub fn shell_word(word: impl AsRef<std::ffi::OsStr>) -> String {
    let word = word.as_ref().to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.into_owned()
    } else if !word.contains(['$', '`', '\\', '"', '!']) {
        format!("\"{word}\"")
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Directories searched for commands, inside the root first, then `PATH`.
const SEARCH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Finds `name`: under `--root`, inside the root first (so fixture trees carry
/// their own fakes); then on the live system's search path.
pub fn find(root: &Root, name: &str) -> Result<PathBuf> {
    if name.starts_with('/') {
        // An absolute path: the root's own copy first (fixture trees), then as is.
        let inside = root.path(name);
        return Ok(if inside.is_file() {
            inside
        } else {
            PathBuf::from(name)
        });
    }
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let live = Root::new("/");
    let roots: &[&Root] = if root.is_live() {
        &[root]
    } else {
        &[root, &live]
    };
    for r in roots {
        for dir in SEARCH {
            let candidate = r.path(Path::new(dir).join(name));
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    anyhow::bail!("command '{name}' not found in {}", SEARCH.join(":"))
}

/// Finds `name` inside the root only (a fixture root never reaches the live
/// system's client tools, nor the live system's servers through them).
pub fn find_inside(root: &Root, name: &str) -> Option<PathBuf> {
    SEARCH
        .iter()
        .map(|dir| root.path(Path::new(dir).join(name)))
        .find(|candidate| candidate.is_file())
}

/// What a logged command did.
#[derive(Debug)]
pub struct Logged {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its output lines (stdout and stderr, in arrival order).
    pub lines: Vec<String>,
}

impl Logged {
    /// Whether any output line contains `needle`.
    pub fn said(&self, needle: &str) -> bool {
        self.lines.iter().any(|l| l.contains(needle))
    }
}

/// Runs `argv`, streaming stdout and stderr to the log as they come,
/// attributed to `phase`/`step`. Returns the exit status and the lines.
pub fn run_logged(
    phase: PhaseKind,
    step: &str,
    argv: &[&str],
    env: &[(&str, &str)],
) -> Result<Logged> {
    let (program, args) = argv.split_first().context("empty command")?;
    let shown = argv.join(" ");
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting '{shown}'"))?;
    let _tracked = crate::base::children::track(child.id());
    let stderr = child.stderr.take().context("no stderr pipe")?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let name = Path::new(program)
        .file_name()
        .map_or_else(|| program.to_string(), |n| n.to_string_lossy().into_owned());
    let lines = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        let (p, s, n, l) = (phase, step, name.as_str(), &lines);
        scope.spawn(move || stream(p, s, n, stderr, l));
        stream(phase, step, &name, stdout, &lines);
    });
    let status = child
        .wait()
        .with_context(|| format!("waiting for '{shown}'"))?;
    let lines = lines.into_inner().unwrap_or_default();
    Ok(Logged { status, lines })
}

fn stream(
    phase: PhaseKind,
    step: &str,
    command: &str,
    pipe: impl Read,
    lines: &std::sync::Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    while let Ok(n) = reader.read_until(b'\n', &mut buf) {
        if n == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf)
            .trim_end_matches(['\n', '\r'])
            .to_string();
        logging::command_output(phase, step, command, &line);
        if let Ok(mut l) = lines.lock() {
            l.push(line);
        }
        buf.clear();
    }
}

/// Runs `argv` quietly with `env` added; stdout and stderr apart (for parsing).
pub fn run_output(argv: &[&str], env: &[(&str, &str)]) -> Result<std::process::Output> {
    let (program, args) = argv.split_first().context("empty command")?;
    Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running '{}'", argv.join(" ")))
}

/// Runs `argv` quietly and returns its status and combined output (for status probes).
pub fn run_captured(argv: &[&str]) -> Result<(ExitStatus, String)> {
    let (program, args) = argv.split_first().context("empty command")?;
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running '{}'", argv.join(" ")))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status, text))
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn words_are_quoted_only_when_needed_and_a_shell_reads_them_back() {
        assert_eq!(
            shell_word("/etc/synnefo/20-a.conf"),
            "/etc/synnefo/20-a.conf"
        );
        assert_eq!(shell_word("/root/vm owners.log"), "\"/root/vm owners.log\"");
        assert_eq!(shell_word("it's"), "\"it's\"");
        assert_eq!(shell_word("$HOME's"), r"'$HOME'\''s'");
        assert_eq!(shell_word(""), "\"\"");
        for word in [
            "/etc/synnefo/my settings.conf",
            "it's",
            "a\"b",
            "$HOME `id` \\ !x 'q' \"d\"",
            "*.conf ~ #c; a|b & (x) <y> {z}",
            "tab\there",
            "caf\u{e9}",
            "",
        ] {
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("printf '%s' {}", shell_word(word)))
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                word,
                "{}",
                shell_word(word)
            );
        }
    }
}
