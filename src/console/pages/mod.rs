//! The console's pages. Each handler finds the operator's session (else sends them to the login
//! form), reads through the library core and renders one page.

pub mod calls;
pub mod errors;
pub mod flows;
pub mod gate;
pub mod overview;

use actix_web::{web, HttpResponse, ResponseError};
use maud::Markup;
use time::OffsetDateTime;

use super::PageError;

/// Registers the pages inside the `/console` scope.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("", web::get().to(overview::page))
        .route("/", web::get().to(overview::page))
        .route("/calls", web::get().to(calls::search))
        .route("/calls/{callid}", web::get().to(calls::call))
        .route("/calls/{callid}/reveal", web::post().to(calls::reveal))
        .route("/errors", web::get().to(errors::page))
        .route("/gate", web::get().to(gate::page))
        .route("/gate/validate", web::post().to(gate::validate))
        .route("/flows", web::get().to(flows::list))
        .route("/flows/{id}", web::get().to(flows::flow))
        .route("/flows/{id}/diff", web::get().to(flows::diff))
        .route("/flows/{id}/simulate", web::post().to(flows::simulate));
}

/// The page, or its error as a page.
pub fn respond(r: Result<Markup, PageError>) -> HttpResponse {
    match r {
        Ok(m) => super::ok(m),
        Err(e) => e.error_response(),
    }
}

/// The window a page counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last hour, by minute.
    Hour,
    /// The last day, by hour.
    Day,
}

impl Window {
    /// `hour` or `day` (anything else: hour).
    pub fn parse(s: Option<&str>) -> Window {
        match s {
            Some("day") => Window::Day,
            _ => Window::Hour,
        }
    }

    /// Where the window starts.
    pub fn since(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            Window::Hour => now - time::Duration::hours(1),
            Window::Day => now - time::Duration::days(1),
        }
    }

    /// `hour` or `day`.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "hour",
            Window::Day => "day",
        }
    }

    /// The chart's bucket (a `date_trunc` field) and the number of buckets.
    pub fn bucket(self) -> (&'static str, i64) {
        match self {
            Window::Hour => ("minute", 60),
            Window::Day => ("hour", 24),
        }
    }
}

/// The "last hour | last day" switch.
pub fn window_switch(path: &str, w: Window) -> Markup {
    maud::html! {
        p.switch {
            a href=(format!("{path}?window=hour")) class=[(w == Window::Hour).then_some("active")] { "Last hour" }
            " · "
            a href=(format!("{path}?window=day")) class=[(w == Window::Day).then_some("active")] { "Last day" }
        }
    }
}
