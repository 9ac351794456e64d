use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Ev {
    Requested { id: String, reason: String },
    Approved { id: String },
}

fn ev(i: u64) -> Ev {
    if i.is_multiple_of(2) {
        Ev::Requested {
            id: format!("r{i}"),
            reason: "deploy \"hotfix\"\nline two".into(),
        }
    } else {
        Ev::Approved {
            id: format!("r{i}"),
        }
    }
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_750_000_000_000 + ms).unwrap()
}

type Opened = (FileLog<Ev>, OpenReport, Vec<Record<Ev>>);

fn open(dir: &Path) -> Result<Opened, LogError> {
    let mut seen = Vec::new();
    let (log, report) = FileLog::open(dir, |r| {
        seen.push(r);
        Ok(())
    })?;
    Ok((log, report, seen))
}

/// A log of `n` records appended one per batch, closed again.
fn log_with(dir: &Path, n: u64) -> PathBuf {
    let (mut log, _, _) = open(dir).unwrap();
    for i in 0..n {
        log.append("alice", at(i as i64), &[ev(i)]).unwrap();
    }
    dir.join(LOG_FILE)
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(path, text).unwrap();
}

fn problem(path: &Path) -> Problem {
    verify(path)
        .unwrap()
        .problem
        .expect("verify should find a problem")
}

fn torn_files(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".torn-"))
        .collect();
    found.sort();
    found
}

#[test]
fn appended_records_replay_identically_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, report, seen) = open(dir.path()).unwrap();
    assert_eq!(report.records, 0);
    assert!(seen.is_empty());
    assert_eq!(log.head(), (0, GENESIS_PREV.to_owned()));

    let mut appended = Vec::new();
    for i in 0..5 {
        appended.extend(log.append("alice", at(i), &[ev(i as u64)]).unwrap());
    }
    assert_eq!(appended[0].seq, 1);
    assert_eq!(appended[0].prev, GENESIS_PREV);
    assert_eq!(appended[1].prev, appended[0].hash);
    let head = log.head();
    assert_eq!(head, (5, appended[4].hash.clone()));
    drop(log);

    let (log, report, replayed) = open(dir.path()).unwrap();
    assert_eq!(report.records, 5);
    assert_eq!(report.recovery, None);
    assert_eq!(replayed, appended);
    assert_eq!(log.head(), head);
}

#[test]
fn record_time_is_truncated_to_the_stored_millisecond() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _, _) = open(dir.path()).unwrap();
    let precise = at(0) + chrono::Duration::nanoseconds(123_456);
    let rec = log.append("alice", precise, &[ev(0)]).unwrap().remove(0);
    assert_eq!(rec.time, at(0));
    let text = fs::read_to_string(log.path()).unwrap();
    assert!(
        text.contains("\"time\":\"2025-06-15T15:06:40.000Z\""),
        "{text}"
    );
}

#[test]
fn line_is_the_documented_format_and_its_hash_covers_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 1);
    let line = lines(&path).remove(0);
    let (prefix, rest) = line.split_once(",\"hash\":\"").unwrap();
    assert!(prefix.starts_with(&format!(
        "{{\"seq\":1,\"prev\":\"{GENESIS_PREV}\",\"time\":\"2025-06-15T15:06:40.000Z\",\"actor\":\"alice\",\"event\":{{"
    )));
    let hash = rest.strip_suffix("\"}").unwrap();
    use sha2::Digest as _;
    assert_eq!(hash, hex::encode(sha2::Sha256::digest(prefix.as_bytes())));
}

#[test]
fn batch_is_written_together_with_consecutive_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _, _) = open(dir.path()).unwrap();
    log.append("alice", at(0), &[ev(0)]).unwrap();
    let batch: Vec<Ev> = (1..5).map(ev).collect();
    let recs = log.append("broker", at(1), &batch).unwrap();
    assert_eq!(recs.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 3, 4, 5]);
    assert!(recs.windows(2).all(|w| w[1].prev == w[0].hash));
    assert!(log.append("broker", at(2), &[]).unwrap().is_empty());
    drop(log);

    let (_, report, replayed) = open(dir.path()).unwrap();
    assert_eq!(report.records, 5);
    assert_eq!(&replayed[1..], &recs[..]);
    assert!(verify(&dir.path().join(LOG_FILE)).unwrap().is_intact());
}

#[test]
fn second_open_is_refused_while_the_first_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _, _) = open(dir.path()).unwrap();
    let err = open(dir.path()).err().expect("second open must fail");
    assert!(matches!(err, LogError::Locked { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("another latch broker"), "{msg}");
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");

    drop(first);
    open(dir.path()).expect("lock is released on drop");
}

#[test]
fn log_file_is_0600_and_a_created_state_dir_0700() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("state");
    let path = log_with(&dir, 1);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir), 0o700);
}

#[test]
fn a_log_readable_by_others_is_tightened_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 1);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    open(dir.path()).unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// Cuts the file at `keep` bytes, opens it and checks the recovery: complete records kept, the
/// torn bytes moved aside, and appends continuing on a valid chain.
fn check_recovery(dir: &Path, original: &[u8], keep: usize, complete: u64) {
    let path = dir.join(LOG_FILE);
    fs::write(&path, &original[..keep]).unwrap();
    let (mut log, report, replayed) = open(dir).unwrap();
    assert_eq!(report.records, complete);
    assert_eq!(replayed.len() as u64, complete);
    let recovery = report.recovery.expect("torn line must be reported");
    assert_eq!(recovery.line, complete + 1);
    let torn = &original[keep - recovery.bytes as usize..keep];
    assert_eq!(fs::read(&recovery.moved_to).unwrap(), torn);
    assert_eq!(
        fs::metadata(&recovery.moved_to)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(recovery.to_string().contains("moved to"));
    assert_eq!(
        fs::read(&path).unwrap(),
        &original[..keep - recovery.bytes as usize]
    );

    let rec = log.append("alice", at(99), &[ev(99)]).unwrap().remove(0);
    assert_eq!(rec.seq, complete + 1);
    drop(log);
    let report = verify(&path).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.lines_verified, complete + 1);
}

#[test]
fn line_torn_mid_record_is_moved_aside_and_complete_records_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 4);
    let original = fs::read(&path).unwrap();
    let last_len = lines(&path)[3].len() + 1;
    check_recovery(dir.path(), &original, original.len() - last_len / 2, 3);
    assert_eq!(torn_files(dir.path()).len(), 1);
}

#[test]
fn last_record_without_its_newline_counts_as_torn() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 3);
    let original = fs::read(&path).unwrap();
    check_recovery(dir.path(), &original, original.len() - 1, 2);
}

#[test]
fn crash_garbage_after_the_last_newline_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 2);
    let mut original = fs::read(&path).unwrap();
    original.extend_from_slice(&[0u8; 300]);
    check_recovery(dir.path(), &original, original.len(), 2);
}

#[test]
fn torn_first_line_leaves_an_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 1);
    let original = fs::read(&path).unwrap();
    check_recovery(dir.path(), &original, 10, 0);
}

#[test]
fn two_recoveries_in_one_second_keep_both_torn_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 1);
    for _ in 0..2 {
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(b"{\"seq\":");
        fs::write(&path, bytes).unwrap();
        open(dir.path()).unwrap().1.recovery.unwrap();
    }
    assert_eq!(torn_files(dir.path()).len(), 2);
}

#[test]
fn damaged_middle_line_fails_open_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 5);
    let mut all = lines(&path);
    all[2] = all[2].replace("alice", "mallory");
    write_lines(&path, &all);
    let before = fs::read(&path).unwrap();

    let err = open(dir.path()).err().expect("must refuse a damaged log");
    match &err {
        LogError::Corrupt { line, why, .. } => {
            assert_eq!(*line, 3);
            assert!(why.contains("does not match its hash"), "{why}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(err.to_string().contains("latch audit verify"));
    assert!(err.to_string().contains("backup"));
    assert_eq!(fs::read(&path).unwrap(), before);
    assert!(torn_files(dir.path()).is_empty());
}

#[test]
fn unparsable_middle_line_fails_open_even_though_it_ends_in_a_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 3);
    let mut all = lines(&path);
    all[1].truncate(40);
    write_lines(&path, &all);
    match open(dir.path()) {
        Err(LogError::Corrupt { line: 2, .. }) => {}
        other => panic!("expected Corrupt at line 2, got {:?}", other.err()),
    }
}

#[test]
fn edited_last_complete_line_is_corruption_not_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 3);
    let mut all = lines(&path);
    all[2] = all[2].replace("r2", "r9");
    write_lines(&path, &all);
    assert!(matches!(
        open(dir.path()),
        Err(LogError::Corrupt { line: 3, .. })
    ));
}

#[test]
fn event_unknown_to_this_binary_is_reported_as_such() {
    #[derive(Debug, Deserialize)]
    #[serde(tag = "type")]
    enum Older {
        #[serde(rename = "approved")]
        Approved,
    }
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 2);
    let err = FileLog::<Older>::open(dir.path(), |_| Ok(()))
        .err()
        .unwrap();
    match &err {
        LogError::UnknownEvent { line: 1, why, .. } => assert!(why.contains("unknown"), "{why}"),
        other => panic!("expected UnknownEvent, got {other:?}"),
    }
}

#[test]
fn apply_error_stops_open_and_names_the_seq() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 3);
    let err = FileLog::<Ev>::open(dir.path(), |r| {
        if r.seq == 2 {
            Err("projection refused".into())
        } else {
            Ok(())
        }
    })
    .err()
    .unwrap();
    assert!(matches!(err, LogError::Apply { seq: 2, .. }), "{err:?}");
}

#[test]
fn replay_through_the_trait_skips_records_already_applied() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 4);
    let (mut log, _, all) = open(dir.path()).unwrap();
    let store: &mut dyn EventStore<Ev> = &mut log;
    let mut seen = Vec::new();
    store
        .replay(2, &mut |r| {
            seen.push(r);
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, &all[2..]);
    assert_eq!(store.head().0, 4);
}

#[test]
fn event_that_cannot_be_encoded_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = FileLog::<BTreeMap<Vec<u8>, u8>>::open(dir.path(), |_| Ok(())).unwrap();
    let good = BTreeMap::new();
    let bad = BTreeMap::from([(vec![1u8], 1u8)]);
    let err = log.append("alice", at(0), &[good, bad]).unwrap_err();
    assert!(matches!(err, LogError::Encode { .. }), "{err:?}");
    assert_eq!(fs::metadata(log.path()).unwrap().len(), 0);
    assert_eq!(log.head().0, 0);
}

#[test]
fn verify_passes_an_intact_log_without_knowing_its_event_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 6);
    // The broker still holds the lock: verify must not need it.
    let (log, _, _) = open(dir.path()).unwrap();
    let report = verify(&path).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.lines_verified, 6);
    assert_eq!((report.last_seq, report.last_hash), log.head());
}

#[test]
fn verify_names_a_byte_edited_in_a_middle_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 5);
    let mut bytes = fs::read(&path).unwrap();
    let second_line_start = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    let pos = second_line_start + 60;
    bytes[pos] ^= 0x01;
    fs::write(&path, bytes).unwrap();
    let p = problem(&path);
    assert_eq!((p.line, &p.kind), (2, &ProblemKind::Edited));
    assert_eq!(
        p.to_string(),
        "line 2: content does not match its hash (edited)"
    );
}

#[test]
fn verify_names_a_byte_edited_in_the_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 5);
    let mut all = lines(&path);
    all[4] = all[4].replace("alice", "alicf");
    write_lines(&path, &all);
    assert_eq!(problem(&path).kind, ProblemKind::Edited);
    assert_eq!(problem(&path).line, 5);
}

#[test]
fn verify_catches_a_changed_case_in_the_last_hash() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 2);
    let mut all = lines(&path);
    let last = &mut all[1];
    let idx = last
        .rfind(|c: char| c.is_ascii_lowercase() && c.is_ascii_hexdigit())
        .unwrap();
    last.replace_range(idx..idx + 1, &last[idx..idx + 1].to_ascii_uppercase());
    write_lines(&path, &all);
    assert_eq!(
        problem(&path),
        Problem {
            line: 2,
            kind: ProblemKind::Edited
        }
    );
}

#[test]
fn verify_names_a_removed_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 5);
    let mut all = lines(&path);
    all.remove(2);
    write_lines(&path, &all);
    let p = problem(&path);
    assert_eq!(p.line, 3);
    assert_eq!(p.kind, ProblemKind::SeqBreak { seq: 4, after: 2 });
    assert!(
        p.to_string()
            .starts_with("line 3: seq 4 follows 2 (a line was removed"),
        "{p}"
    );
}

#[test]
fn verify_names_removed_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 3);
    let mut all = lines(&path);
    all.remove(0);
    write_lines(&path, &all);
    let p = problem(&path);
    assert_eq!(p.line, 1);
    assert!(p.to_string().contains("beginning was removed"), "{p}");
}

#[test]
fn verify_names_two_swapped_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 5);
    let mut all = lines(&path);
    all.swap(1, 2);
    write_lines(&path, &all);
    let p = problem(&path);
    assert_eq!(p.line, 2);
    assert_eq!(p.kind, ProblemKind::SeqBreak { seq: 3, after: 1 });
}

#[test]
fn verify_names_a_line_renumbered_but_not_rechained() {
    // Someone removes line 3 and rewrites seq and hash of the later lines but not `prev`.
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 3);
    let mut all = lines(&path);
    let third = all.remove(2);
    let (prefix, _) = third.split_once(",\"hash\":\"").unwrap();
    let prefix = prefix.replacen("\"seq\":3", "\"seq\":2", 1);
    use sha2::Digest as _;
    let hash = hex::encode(sha2::Sha256::digest(prefix.as_bytes()));
    all[1] = format!("{prefix},\"hash\":\"{hash}\"}}");
    write_lines(&path, &all);
    let p = problem(&path);
    assert_eq!(p.kind, ProblemKind::PrevMismatch);
    assert_eq!(
        p.to_string(),
        "line 2: prev does not match line 1's hash (lines removed or reordered)"
    );
}

#[test]
fn verify_names_a_line_that_is_not_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 4);
    let mut all = lines(&path);
    all[1] = "hello, auditor".into();
    write_lines(&path, &all);
    let p = problem(&path);
    assert_eq!(p.line, 2);
    assert!(matches!(p.kind, ProblemKind::NotJson { .. }));
    assert!(p.to_string().starts_with("line 2 is not valid JSON"), "{p}");
}

#[test]
fn verify_names_json_that_is_not_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 2);
    let mut all = lines(&path);
    all[0] = "{\"seq\":1}".into();
    write_lines(&path, &all);
    assert!(matches!(
        problem(&path).kind,
        ProblemKind::NotARecord { .. }
    ));
}

#[test]
fn verify_names_a_torn_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 3);
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 20]).unwrap();
    let report = verify(&path).unwrap();
    let p = report.problem.clone().unwrap();
    assert_eq!(p.line, 3);
    assert!(matches!(p.kind, ProblemKind::Torn { .. }));
    assert!(
        p.to_string()
            .contains("last line is incomplete (torn write"),
        "{p}"
    );
    assert_eq!(report.lines_verified, 2);
}

#[test]
fn verify_of_a_missing_file_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = verify(&dir.path().join("nope.jsonl")).unwrap_err();
    assert!(err.to_string().contains("nope.jsonl"), "{err}");
}

#[test]
fn long_logs_and_lines_longer_than_a_read_chunk_replay_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _, _) = open(dir.path()).unwrap();
    let long = Ev::Requested {
        id: "long".into(),
        reason: "x".repeat(100_000),
    };
    let mut appended = log.append("alice", at(0), &[long]).unwrap();
    for i in 0..300 {
        appended.extend(log.append("alice", at(i), &[ev(i as u64)]).unwrap());
    }
    drop(log);
    let path = dir.path().join(LOG_FILE);
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(b"{\"seq\":302,\"prev\":\"");
    fs::write(&path, bytes).unwrap();

    let (_, report, replayed) = open(dir.path()).unwrap();
    assert_eq!(replayed, appended);
    assert_eq!(report.recovery.unwrap().line, 302);
    assert_eq!(verify(&path).unwrap().lines_verified, 301);
}
