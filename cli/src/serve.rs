//! `sagaflow serve`: a local web page over a store.
//!
//! Server-rendered HTML, no script: the list with filters, a saga's page with
//! its graph coloured by state, its report and journal, and the two
//! interventions as forms. Every user-provided string (types, step names,
//! errors, notes, input) is escaped, and a Content-Security-Policy forbids
//! scripts outright, so a hostile error text cannot run in the page.
//!
//! Writes need the token given at start; without one, the page only reads.
//! It binds 127.0.0.1 unless `--allow-remote` is given.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sagaflow::SagaId;
use sagaflow::durable::{SagaFilter, Store};
use serde::Deserialize;

use crate::html::{esc, list_page, page, saga_page};
use crate::{Failure, intervene, list, parse_status, parse_time, show};

/// `sagaflow serve`'s options.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// The address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Allow an address other than loopback: the page then reaches anyone
    /// who can reach the address.
    #[arg(long)]
    allow_remote: bool,
    /// The token every write must carry; without one, the page is read-only.
    #[arg(long, env = "SAGAFLOW_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

struct App<St> {
    store: St,
    token: Option<String>,
}

/// Serves `store` (shown as `place`, the file or the server) until the
/// process is stopped (Ctrl-C).
pub async fn run<St: Store + Clone>(
    store: St,
    place: String,
    options: Options,
) -> Result<(), Failure> {
    if !options.listen.ip().is_loopback() && !options.allow_remote {
        return Err(Failure {
            code: 2,
            message: format!(
                "{} is not a loopback address: the page would be reachable from other \
                 machines; pass --allow-remote if that is meant",
                options.listen
            ),
        });
    }
    if options.token.as_deref() == Some("") {
        return Err(Failure {
            code: 2,
            message: "the token is empty: give a secret with --token or SAGAFLOW_TOKEN".into(),
        });
    }
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| Failure::store(format!("cannot listen on {}: {e}", options.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::store(format!("cannot read the listening address: {e}")))?;
    let writes = match options.token {
        Some(_) => "writes need the token",
        None => "read-only: no token given",
    };
    // Printed before serving so that a script (or a test) can read the port.
    println!("sagaflow: serving {place} on http://{addr}/ ({writes})");
    let app = Arc::new(App {
        store,
        token: options.token,
    });
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| Failure::store(format!("the server stopped: {e}")))
}

fn router<St: Store + Clone>(app: Arc<App<St>>) -> Router {
    Router::new()
        .route("/", get(index::<St>))
        .route("/saga/{id}", get(saga::<St>))
        .route("/saga/{id}/retry-compensations", post(retry::<St>))
        .route("/saga/{id}/resolve", post(resolve::<St>))
        .fallback(|| async {
            html(
                StatusCode::NOT_FOUND,
                page("not found", "<p>No such page.</p>"),
            )
        })
        .with_state(app)
}

/// An HTML answer with the headers every page carries.
fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // No script, no outside resource, forms only to this server.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn failure_page(failure: &Failure) -> Response {
    let status = match failure.code {
        3 => StatusCode::NOT_FOUND,
        4 => StatusCode::CONFLICT,
        2 => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = format!(
        "<p class=\"error\">{}</p><p><a href=\"/\">All sagas</a></p>",
        esc(&failure.message)
    );
    html(status, page("error", &body))
}

async fn index<St: Store + Clone>(
    State(app): State<Arc<App<St>>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let bad = |message: String| Failure { code: 2, message };
    let filter = (|| -> Result<SagaFilter, Failure> {
        Ok(SagaFilter {
            status: field("status").map(parse_status).transpose().map_err(bad)?,
            saga_type: field("type").map(str::to_owned),
            since: field("since").map(parse_time).transpose().map_err(bad)?,
            limit: field("limit")
                .map(|l| {
                    l.parse::<usize>()
                        .map_err(|_| bad(format!("limit `{l}` is not a number")))
                })
                .transpose()?
                .or(Some(500)),
        })
    })();
    let filter = match filter {
        Ok(filter) => filter,
        Err(failure) => return failure_page(&failure),
    };
    match list(&app.store, filter.clone()).await {
        Ok(sagas) => html(
            StatusCode::OK,
            list_page(&sagas, &filter, SystemTime::now()),
        ),
        Err(failure) => failure_page(&failure),
    }
}

fn saga_id(text: &str) -> Result<SagaId, Failure> {
    text.parse()
        .map_err(|e: sagaflow::ParseSagaIdError| Failure {
            code: 3,
            message: e.to_string(),
        })
}

async fn saga<St: Store + Clone>(
    State(app): State<Arc<App<St>>>,
    Path(id): Path<String>,
) -> Response {
    saga_response(&app, &id, StatusCode::OK, None).await
}

async fn saga_response<St: Store + Clone>(
    app: &App<St>,
    id: &str,
    status: StatusCode,
    flash: Option<&str>,
) -> Response {
    let id = match saga_id(id) {
        Ok(id) => id,
        Err(failure) => return failure_page(&failure),
    };
    match show(&app.store, id).await {
        Ok(saga) => html(
            status,
            saga_page(&saga, SystemTime::now(), app.token.is_some(), flash),
        ),
        Err(failure) => failure_page(&failure),
    }
}

/// The fields of an intervention's form.
#[derive(Debug, Deserialize)]
struct Intervention {
    #[serde(default)]
    token: String,
    #[serde(default)]
    note: String,
}

async fn retry<St: Store + Clone>(
    State(app): State<Arc<App<St>>>,
    Path(id): Path<String>,
    Form(form): Form<Intervention>,
) -> Response {
    act(&app, &id, true, form).await
}

async fn resolve<St: Store + Clone>(
    State(app): State<Arc<App<St>>>,
    Path(id): Path<String>,
    Form(form): Form<Intervention>,
) -> Response {
    act(&app, &id, false, form).await
}

async fn act<St: Store + Clone>(
    app: &App<St>,
    id: &str,
    retry: bool,
    form: Intervention,
) -> Response {
    let allowed = app
        .token
        .as_deref()
        .is_some_and(|token| same(token.as_bytes(), form.token.as_bytes()));
    if !allowed {
        let why = match app.token {
            None => "this page was started without a token, so it cannot write",
            Some(_) => "refused: the token is missing or wrong; nothing was done",
        };
        let body = format!(
            "<p class=\"error\">{why}</p><p><a href=\"/saga/{}\">Back to the saga</a></p>",
            esc(id)
        );
        return html(StatusCode::FORBIDDEN, page("refused", &body));
    }
    if form.note.trim().is_empty() {
        let failure = Failure {
            code: 2,
            message: "a note is required: say who you are and why".into(),
        };
        return failure_page(&failure);
    }
    let parsed = match saga_id(id) {
        Ok(parsed) => parsed,
        Err(failure) => return failure_page(&failure),
    };
    match intervene(&app.store, parsed, retry, form.note.trim()).await {
        Ok(()) => {
            let flash = match retry {
                true => {
                    "Sent back to compensating: the application's executor runs the failed compensations at its next recovery."
                }
                false => "Marked resolved.",
            };
            saga_response(app, id, StatusCode::OK, Some(flash)).await
        }
        Err(failure) => failure_page(&failure),
    }
}

/// Compares two secrets in time that depends only on their lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
