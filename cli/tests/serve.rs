//! `sagaflow serve` over real HTTP on 127.0.0.1, on a store real durable runs
//! filled.

mod common;

use common::{HOSTILE, Server, fill, form_encode, sagaflow, stderr};

#[test]
fn the_list_filters_and_links_every_saga() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ids) = fill(dir.path());
    let server = Server::start(&path, &[]);

    let (status, head, body) = server.request("GET", "/", None);
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    for id in [
        ids.committed,
        ids.compensated,
        ids.parked,
        ids.parked_again,
        ids.running,
    ] {
        assert!(
            body.contains(&format!("href=\"/saga/{id}\"")),
            "{id} missing"
        );
    }
    let (_, _, parked) = server.request("GET", "/?status=parked&type=&since=&limit=", None);
    assert!(parked.contains(&ids.parked.to_string()));
    assert!(!parked.contains(&ids.committed.to_string()));
    let (_, _, none) = server.request("GET", "/?type=other", None);
    assert!(none.contains("No sagas match."));
    let (status, _, bad) = server.request("GET", "/?status=stuck", None);
    assert_eq!(status, 400);
    assert!(bad.contains("`stuck` is not a status"), "{bad}");
    let (status, _, _) = server.request("GET", "/saga/0123456789abcdef0123456789abcdef", None);
    assert_eq!(status, 404);
    let (status, _, _) = server.request("GET", "/saga/%3Cb%3E", None);
    assert_eq!(status, 404);
}

#[test]
fn hostile_text_is_escaped_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ids) = fill(dir.path());
    let server = Server::start(&path, &[]);
    let (status, _, page) = server.request("GET", &format!("/saga/{}", ids.parked), None);
    assert_eq!(status, 200);
    let (_, _, list) = server.request("GET", "/", None);
    for body in [&page, &list] {
        assert!(!body.contains("<script"), "{body}");
        assert!(!body.contains("<img"), "{body}");
        assert!(!body.contains(HOSTILE));
        assert!(
            body.contains(
                "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
            ),
            "{body}"
        );
    }
    // The graph, report and journal are there, each step in its state's colour.
    assert!(page.contains("<svg "));
    // Boxes in the graph crate's order: the steps, then the compensations.
    let fills: Vec<&str> = page
        .match_indices("\" fill-opacity=\"0.35\"")
        .map(|(at, _)| &page[at - 7..at])
        .collect();
    let (done, failed, not_reached) = ("#1a7f37", "#cf222e", "#8c959f");
    assert_eq!(
        fills,
        // hold_seat, charge_card, send_ticket, release_seat, refund_card
        [done, failed, not_reached, failed, not_reached]
    );
    assert!(page.contains("<table id=\"report\">"));
    assert!(page.contains("compensation_failed"));
    assert!(page.contains("action=\"/saga/") && page.contains("/retry-compensations\""));
}

#[test]
fn interventions_need_the_token_and_tell_who_won() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ids) = fill(dir.path());
    let server = Server::start(&path, &["--token", "s3cret"]);
    let retry = format!("/saga/{}/retry-compensations", ids.parked_again);
    let status_of = |server: &Server| {
        let (_, _, page) = server.request("GET", &format!("/saga/{}", ids.parked_again), None);
        let start = page.find("<strong id=\"status\">").unwrap() + 20;
        page[start..].split('<').next().unwrap().to_owned()
    };

    let (status, _, body) = server.request("POST", &retry, Some("note=me&token="));
    assert_eq!(status, 403);
    assert!(body.contains("the token is missing or wrong"));
    let (status, _, _) = server.request("POST", &retry, Some("note=me"));
    assert_eq!(status, 403);
    let (status, _, _) = server.request("POST", &retry, Some("note=me&token=s3cre"));
    assert_eq!(status, 403);
    assert_eq!(status_of(&server), "parked");

    let (status, _, body) = server.request("POST", &retry, Some("note=&token=s3cret"));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("a note is required"));

    let note = form_encode("ada <on call>");
    let (status, _, body) =
        server.request("POST", &retry, Some(&format!("note={note}&token=s3cret")));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Sent back to compensating"));
    assert!(
        body.contains("ada &lt;on call&gt;"),
        "the note is in the journal, escaped"
    );
    assert_eq!(status_of(&server), "running");

    let resolve = format!("/saga/{}/resolve", ids.parked_again);
    let (status, _, body) = server.request("POST", &resolve, Some("note=bob&token=s3cret"));
    assert_eq!(status, 409);
    assert!(body.contains("is running, not parked, so nothing was done; someone sent it back to compensating, with the note &quot;ada &lt;on call&gt;&quot;"), "{body}");
}

#[test]
fn without_a_token_the_page_only_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ids) = fill(dir.path());
    let server = Server::start(&path, &[]);
    let (_, _, page) = server.request("GET", &format!("/saga/{}", ids.parked), None);
    assert!(page.contains("started without a token"));
    let (status, _, body) = server.request(
        "POST",
        &format!("/saga/{}/resolve", ids.parked),
        Some("note=x&token="),
    );
    assert_eq!(status, 403);
    assert!(body.contains("started without a token, so it cannot write"));
}

#[test]
fn a_non_loopback_address_needs_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = fill(dir.path());
    let output = sagaflow(&[
        "serve",
        "--store",
        path.to_str().unwrap(),
        "--listen",
        "0.0.0.0:0",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("0.0.0.0:0 is not a loopback address"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("--allow-remote"));
}
