//! A failed run's report has every forward step that ran, the plain first-attempt
//! successes included (a regression a review caught: they went missing).
use sagaflow::{Runner, saga, step};
use std::sync::atomic::{AtomicU32, Ordering};

#[step(read_only)]
async fn first(_n: &AtomicU32) -> Result<u32, String> {
    Ok(1)
}

#[step(read_only, retry(max = 2, backoff = "1ms"))]
async fn second(n: &AtomicU32) -> Result<u32, String> {
    if n.fetch_add(1, Ordering::SeqCst) == 0 {
        Err("once".into())
    } else {
        Ok(2)
    }
}

#[step(read_only)]
async fn third(_n: &AtomicU32) -> Result<u32, String> {
    Err("no".into())
}

#[saga]
async fn three(n: &AtomicU32) -> Result<u32, String> {
    let a = first(n).await?;
    let b = second(n).await?;
    let c = third(n).await?;
    Ok(a + b + c)
}

#[tokio::test]
async fn a_failed_runs_report_has_every_forward_step() {
    let n = AtomicU32::new(0);
    let err = Runner::new().run(ThreeSaga::new(&n)).await.unwrap_err();
    let steps: Vec<_> = err.report().steps().map(|r| r.step()).collect();
    assert_eq!(steps, ["first", "second", "third"]);
}

#[saga]
async fn two(n: &AtomicU32) -> Result<u32, String> {
    let a = first(n).await?;
    let c = third(n).await?;
    Ok(a + c)
}

#[tokio::test]
async fn two_steps_second_fails() {
    let n = AtomicU32::new(0);
    let err = Runner::new().run(TwoSaga::new(&n)).await.unwrap_err();
    let steps: Vec<_> = err.report().steps().map(|r| r.step()).collect();
    assert_eq!(steps, ["first", "third"]);
}

// Five compensatable steps: the second succeeds on its second attempt, the
// fifth fails; the third's compensation fails once and then succeeds, the
// first's fails for good. The report is rebuilt in place at the end (the
// plain successes among the kept records), and a compensation's first
// attempt runs on a short path whose failure the retry loop takes over.

#[step(compensate = undo_plain)]
async fn plain(_n: &AtomicU32, k: u32) -> Result<u32, String> {
    Ok(k)
}

async fn undo_plain(_n: &AtomicU32, _k: u32, _out: &u32) -> Result<(), String> {
    Ok(())
}

#[step(compensate = undo_plain, retry(max = 2, backoff = "1ms"))]
async fn flaky(n: &AtomicU32, k: u32) -> Result<u32, String> {
    if n.fetch_add(1, Ordering::SeqCst) == 0 {
        Err("flaky once".into())
    } else {
        Ok(k)
    }
}

#[step(compensate = undo_twice, compensate_retry(max = 2, backoff = "1ms"))]
async fn undone_at_second(_n: &AtomicU32, k: u32) -> Result<u32, String> {
    Ok(k)
}

async fn undo_twice(n: &AtomicU32, _k: u32, _out: &u32) -> Result<(), String> {
    if n.fetch_add(1, Ordering::SeqCst) == 2 {
        Err("undo refused once".into())
    } else {
        Ok(())
    }
}

#[step(compensate = undo_never, compensate_retry(max = 0))]
async fn stuck(_n: &AtomicU32, k: u32) -> Result<u32, String> {
    Ok(k)
}

async fn undo_never(_n: &AtomicU32, _k: u32, _out: &u32) -> Result<(), String> {
    Err("cannot undo".into())
}

#[step(compensate = undo_plain)]
async fn fails(_n: &AtomicU32, _k: u32) -> Result<u32, String> {
    Err("fails for good".into())
}

#[saga]
async fn five(n: &AtomicU32) -> Result<u32, String> {
    let a = stuck(n, 0).await?;
    let b = flaky(n, 1).await?;
    let c = undone_at_second(n, 2).await?;
    let d = plain(n, 3).await?;
    let e = fails(n, 4).await?;
    Ok(a + b + c + d + e)
}

#[tokio::test]
async fn a_failed_runs_report_keeps_the_order_things_ran_in() {
    let n = AtomicU32::new(0);
    let err = Runner::new().run(FiveSaga::new(&n)).await.unwrap_err();
    let rows: Vec<_> = err
        .report()
        .records()
        .iter()
        .map(|r| {
            (
                r.step(),
                r.function(),
                r.index(),
                r.outcome(),
                r.attempts(),
                r.error().map(str::to_owned),
            )
        })
        .collect();
    use sagaflow::Outcome::{Failed, Succeeded};
    let text = |s: &str| Some(s.to_owned());
    assert_eq!(
        rows,
        [
            ("stuck", "stuck", 0, Succeeded, 1, None),
            ("flaky", "flaky", 1, Succeeded, 2, text("flaky once")),
            (
                "undone_at_second",
                "undone_at_second",
                2,
                Succeeded,
                1,
                None
            ),
            ("plain", "plain", 3, Succeeded, 1, None),
            ("fails", "fails", 4, Failed, 1, text("fails for good")),
            ("plain", "undo_plain", 3, Succeeded, 1, None),
            (
                "undone_at_second",
                "undo_twice",
                2,
                Succeeded,
                2,
                text("undo refused once")
            ),
            ("flaky", "undo_plain", 1, Succeeded, 1, None),
            ("stuck", "undo_never", 0, Failed, 1, text("cannot undo")),
        ]
    );
    assert_eq!(err.undone(), ["plain", "undone_at_second", "flaky"]);
    assert_eq!(err.failed_compensations().len(), 1);
    assert_eq!(err.failed_compensations()[0].error(), "cannot undo");
    assert!(!err.is_compensated());
}

/// An error text longer than the room on the stack that short texts are
/// formatted in arrives whole.
#[step(compensate = undo_plain)]
async fn long_error(_n: &AtomicU32, _k: u32) -> Result<u32, String> {
    Err("x".repeat(300))
}

#[saga]
async fn long_one(n: &AtomicU32) -> Result<u32, String> {
    let a = plain(n, 0).await?;
    let b = long_error(n, 1).await?;
    Ok(a + b)
}

#[tokio::test]
async fn a_long_error_text_is_kept_whole() {
    let n = AtomicU32::new(0);
    let err = Runner::new().run(LongOneSaga::new(&n)).await.unwrap_err();
    let failed = err.failed_steps();
    assert_eq!(failed[0].error(), Some("x".repeat(300).as_str()));
}

// Twenty-six steps, the last failing: its record and the twenty-five plain
// compensations are more than the failure's box keeps in place (24), so the
// first 24 spill into the records' `Vec` and the rest follow them.
macro_rules! counted_steps {
    ($($step:ident $k:literal),* $(,)?) => {
        $(
            #[step(compensate = undo_counted)]
            async fn $step(n: &AtomicU32) -> Result<u32, String> {
                if $k == 25 {
                    return Err(format!("step {} failed", $k));
                }
                n.fetch_add(1, Ordering::SeqCst);
                Ok($k)
            }
        )*
    };
}

async fn undo_counted(n: &AtomicU32, out: &u32) -> Result<(), String> {
    n.fetch_sub(1, Ordering::SeqCst);
    let _ = out;
    Ok(())
}

counted_steps!(
    c0 0, c1 1, c2 2, c3 3, c4 4, c5 5, c6 6, c7 7, c8 8, c9 9, c10 10, c11 11, c12 12,
    c13 13, c14 14, c15 15, c16 16, c17 17, c18 18, c19 19, c20 20, c21 21, c22 22, c23 23,
    c24 24, c25 25,
);

#[saga]
async fn twenty_six(n: &AtomicU32) -> Result<u32, String> {
    let a0 = c0(n).await?;
    let a1 = c1(n).await?;
    let a2 = c2(n).await?;
    let a3 = c3(n).await?;
    let a4 = c4(n).await?;
    let a5 = c5(n).await?;
    let a6 = c6(n).await?;
    let a7 = c7(n).await?;
    let a8 = c8(n).await?;
    let a9 = c9(n).await?;
    let a10 = c10(n).await?;
    let a11 = c11(n).await?;
    let a12 = c12(n).await?;
    let a13 = c13(n).await?;
    let a14 = c14(n).await?;
    let a15 = c15(n).await?;
    let a16 = c16(n).await?;
    let a17 = c17(n).await?;
    let a18 = c18(n).await?;
    let a19 = c19(n).await?;
    let a20 = c20(n).await?;
    let a21 = c21(n).await?;
    let a22 = c22(n).await?;
    let a23 = c23(n).await?;
    let a24 = c24(n).await?;
    let a25 = c25(n).await?;
    Ok(a0
        + a1
        + a2
        + a3
        + a4
        + a5
        + a6
        + a7
        + a8
        + a9
        + a10
        + a11
        + a12
        + a13
        + a14
        + a15
        + a16
        + a17
        + a18
        + a19
        + a20
        + a21
        + a22
        + a23
        + a24
        + a25)
}

#[tokio::test]
async fn more_plain_records_than_the_box_keeps_stay_in_order() {
    let n = AtomicU32::new(0);
    let err = Runner::new().run(TwentySixSaga::new(&n)).await.unwrap_err();
    assert_eq!(n.load(Ordering::SeqCst), 0, "every step undone");
    let names: Vec<String> = (0..25).rev().map(|k| format!("c{k}")).collect();
    assert_eq!(err.undone(), names);
    let records = err.report().records();
    assert_eq!(records.len(), 26 + 25);
    for (k, r) in records[..26].iter().enumerate() {
        assert_eq!(
            (r.step(), r.index(), r.phase()),
            (format!("c{k}").as_str(), k as u32, sagaflow::Phase::Forward)
        );
    }
    assert_eq!(records[25].error(), Some("step 25 failed"));
    assert_eq!(records[25].outcome(), sagaflow::Outcome::Failed);
    for (j, r) in records[26..].iter().enumerate() {
        let k = 24 - j;
        assert_eq!(
            (
                r.step(),
                r.function(),
                r.index(),
                r.phase(),
                r.attempts(),
                r.error()
            ),
            (
                format!("c{k}").as_str(),
                "undo_counted",
                k as u32,
                sagaflow::Phase::Compensation,
                1,
                None
            )
        );
    }
    // The report a failed run's error builds when it is read is the one an
    // untimed run that asked for it gets at its end.
    let (result, at_end) = Runner::new()
        .with_timings(false)
        .run_reported(TwentySixSaga::new(&n))
        .await;
    assert_eq!(at_end.records(), records);
    assert_eq!(result.unwrap_err().report().records(), records);
}

// Two steps, the second failing: the failure's box keeps both records (the
// failed step's text and the plain compensation), and the report it builds
// when read is the one a run that asked for it gets at its end.
#[saga]
async fn plain_two(n: &AtomicU32) -> Result<u32, String> {
    let a = plain(n, 0).await?;
    let b = fails(n, 1).await?;
    Ok(a + b)
}

#[tokio::test]
async fn the_records_the_box_keeps_make_the_report_a_listener_gets() {
    let n = AtomicU32::new(0);
    let err = Runner::new().run(PlainTwoSaga::new(&n)).await.unwrap_err();
    let (result, at_end) = Runner::new()
        .with_timings(false)
        .run_reported(PlainTwoSaga::new(&n))
        .await;
    assert_eq!(err.report().records(), at_end.records());
    assert_eq!(err.undone(), ["plain"]);
    assert_eq!(err.failed_steps()[0].error(), Some("fails for good"));
    assert_eq!(
        err.to_string(),
        result.unwrap_err().to_string(),
        "the same text, built from the box or from the report"
    );
    assert_eq!(
        err.to_string(),
        "saga step `fails` failed (fails for good); undone: `plain`"
    );
}
