//! The ceiling for `benches/load.sh`: a bare actix-web handler, built from the same dependency
//! versions as svamlgate, that parses the ICE body and returns fixed SVAML. Nothing else.
//!
//! `cargo run --release --example bare -- 127.0.0.1:8090`

use actix_web::{web, App, HttpResponse, HttpServer};

const REPLY: &str = r##"{"instructions":[{"name":"say","text":"Welcome.","locale":"en-US"}],"action":{"name":"runMenu","mainMenu":"main","menus":[{"id":"main","mainPrompt":"#tts[Press 1 for sales]","options":[{"dtmf":"1","action":"return(sales)"}]}]}}"##;

async fn callback(body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(event) if event.get("event").is_some() => HttpResponse::Ok()
            .content_type("application/json")
            .body(REPLY),
        _ => HttpResponse::BadRequest().finish(),
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(|| App::new().route("/sinch/callback", web::post().to(callback)))
            .bind(addr)?
            .run()
            .await
    })
}
