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
