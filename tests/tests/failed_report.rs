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
