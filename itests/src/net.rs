//! A test network of real processes: `fulmen net up --dir <tempdir>/net …`, driven through
//! the CLI with `--net DIR --node NAME`, stopped with `fulmen net down` on drop (so a failing
//! test leaves no daemon behind).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{fulmen, CliOutput};

/// A network from `fulmen net up`.
pub struct TestNet {
    root: tempfile::TempDir,
    summary: Value,
}

impl TestNet {
    /// `fulmen net up --dir <tempdir>/net ARGS…`; panics with the command's output if it
    /// fails.
    pub fn up(args: &[&str]) -> TestNet {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("net");
        let mut all = vec!["net", "up", "--dir", dir.to_str().expect("utf-8 dir")];
        all.extend_from_slice(args);
        let out = fulmen(&all);
        // Stop whatever did start even if `net up` failed half way.
        let mut net = TestNet {
            root,
            summary: Value::Null,
        };
        net.summary = out.ok();
        net
    }

    /// What `net up` printed.
    pub fn summary(&self) -> &Value {
        &self.summary
    }

    /// The temporary directory the network lives in (for a test's own files).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The network directory (`--dir` / `--net`).
    pub fn dir(&self) -> PathBuf {
        self.root.path().join("net")
    }

    /// The network directory as a string, for command lines.
    pub fn dir_str(&self) -> String {
        self.dir().to_str().expect("utf-8 dir").to_owned()
    }

    /// `fulmen --net DIR --node NODE ARGS…`.
    pub fn cli(&self, node: &str, args: &[&str]) -> CliOutput {
        let dir = self.dir_str();
        let mut all = vec!["--net", dir.as_str(), "--node", node];
        all.extend_from_slice(args);
        fulmen(&all)
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let dir = self.dir();
        let _ = fulmen(&["net", "down", "--dir", dir.to_str().unwrap_or_default()]);
    }
}
