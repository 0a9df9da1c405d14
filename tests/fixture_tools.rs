//! A fresh clone rebuilds its fixtures: the tools under tests/fixtures/tools
//! run on the captures under tests/data/captures must reproduce the
//! committed trees byte for byte, so a fixture is what its capture says.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python(args: &[&str], cwd: &Path) {
    let output = Command::new("python3")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "python3 {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn python_ready() -> bool {
    support::require(support::have_command("python3"), "python3")
}

/// Every regular file and symlink below `built` equals the one at the same
/// place below `committed`.
fn assert_contained(built: &Path, committed: &Path) -> usize {
    let mut checked = 0;
    for entry in std::fs::read_dir(built).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        let twin = committed.join(entry.file_name());
        if kind.is_dir() {
            checked += assert_contained(&entry.path(), &twin);
        } else if kind.is_symlink() {
            assert_eq!(
                std::fs::read_link(entry.path()).unwrap(),
                std::fs::read_link(&twin).unwrap_or_else(|e| panic!("{}: {e}", twin.display())),
                "{}",
                twin.display()
            );
            checked += 1;
        } else {
            let want = std::fs::read(&twin).unwrap_or_else(|e| panic!("{}: {e}", twin.display()));
            assert!(
                std::fs::read(entry.path()).unwrap() == want,
                "{} differs from what the tool builds from its capture",
                twin.display()
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn capture_to_rootfs_rebuilds_the_cluster_fixtures() {
    if !python_ready() {
        return;
    }
    let cases = [
        ("cluster-mounted-n1", "n1-02-2node-mounted"),
        ("cluster-mounted-n2", "n2-02-2node-mounted"),
        ("cluster-online-unmounted", "n1-01-online-nomount"),
    ];
    for (scenario, capture) in cases {
        let out = tempfile::tempdir().unwrap();
        for part in [
            "configfs-cluster",
            "debugfs-o2hb",
            "debugfs-o2net",
            "debugfs-o2dlm",
        ] {
            let file = repo().join(format!("tests/data/captures/{capture}-{part}.txt"));
            python(
                &[
                    "tests/fixtures/tools/capture_to_rootfs.py",
                    file.to_str().unwrap(),
                    out.path().to_str().unwrap(),
                ],
                &repo(),
            );
        }
        let committed = repo().join(format!("tests/fixtures/{scenario}/rootfs"));
        let checked = assert_contained(out.path(), &committed);
        assert!(checked > 20, "{scenario}: only {checked} files built");
    }
}

#[test]
fn make_heartbeat_region_rebuilds_the_disk_images() {
    if !python_ready() {
        return;
    }
    // The extra slot of heartbeat-disk-foreign-slot is given in its README.
    for (scenario, capture, extra) in [
        (
            "cluster-mounted-n1",
            "n1-02-2node-mounted-debugfs.ocfs2.txt",
            None,
        ),
        (
            "cluster-mounted-n2",
            "n2-02-2node-mounted-debugfs.ocfs2.txt",
            None,
        ),
        (
            "heartbeat-disk-foreign-slot",
            "n1-02-2node-mounted-debugfs.ocfs2.txt",
            Some("7:7:000000006b017fb3:77ee0f1c2a3b4c5d:14000"),
        ),
    ] {
        let out = tempfile::tempdir().unwrap();
        let image = out.path().join("vda");
        let capture = repo().join("tests/data/captures").join(capture);
        let mut args = vec![
            "tests/fixtures/tools/make_heartbeat_region.py",
            capture.to_str().unwrap(),
            "2184",
            "512",
            "255",
            image.to_str().unwrap(),
        ];
        args.extend(extra);
        python(&args, &repo());
        let committed = repo().join(format!("tests/fixtures/{scenario}/rootfs/dev/vda"));
        assert!(
            std::fs::read(&image).unwrap() == std::fs::read(&committed).unwrap(),
            "{} differs from the image built from {}",
            committed.display(),
            capture.display()
        );
    }
}

#[test]
fn make_iscsi_fixtures_rebuilds_the_storage_fixtures() {
    if !python_ready() {
        return;
    }
    // The tool writes tests/fixtures/<scenario>/rootfs below its working
    // directory and reads the captures from tests/data/captures there.
    let work = tempfile::tempdir().unwrap();
    support::copy_tree(
        &repo().join("tests/data/captures"),
        &work.path().join("tests/data/captures"),
    );
    python(
        &[repo()
            .join("tests/fixtures/tools/make_iscsi_fixtures.py")
            .to_str()
            .unwrap()],
        work.path(),
    );
    let built = work.path().join("tests/fixtures");
    let mut scenarios = 0;
    for entry in std::fs::read_dir(&built).unwrap() {
        let name = entry.unwrap().file_name();
        let committed = repo().join("tests/fixtures").join(&name);
        assert_contained(&built.join(&name), &committed);
        scenarios += 1;
    }
    assert!(scenarios >= 5, "only {scenarios} scenarios built");
}
