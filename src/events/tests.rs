//! Tests of the lenient event reader against Sinch's published payloads and hostile input.

use super::*;
use proptest::prelude::*;
use reader::escape_pointer_token;
use serde_json::{json, Map};
use time::macros::datetime;

const ICE_JAVA: &str = include_str!("../../tests/fixtures/sinch/ice-java-sdk-1.json");
const ICE_NODE: &str = include_str!("../../tests/fixtures/sinch/ice-node-sdk-1.json");
const ICE_NUGET: &str = include_str!("../../tests/fixtures/sinch/ice-nuget-serversdk-1.json");
const ACE_JAVA: &str = include_str!("../../tests/fixtures/sinch/ace-java-sdk-1.json");
const ACE_DOCS: &str = include_str!("../../tests/fixtures/sinch/ace-sinch-docs-signing-1.json");
const DICE_DOTNET: &str = include_str!("../../tests/fixtures/sinch/dice-dotnet-sdk-1.json");
const DICE_JAVA: &str = include_str!("../../tests/fixtures/sinch/dice-java-sdk-1.json");
const PIE_JAVA: &str = include_str!("../../tests/fixtures/sinch/pie-java-sdk-1.json");
const PIE_NODE: &str = include_str!("../../tests/fixtures/sinch/pie-node-sdk-1.json");
const NOTIFY_JAVA: &str = include_str!("../../tests/fixtures/sinch/notify-java-sdk-1.json");

fn parse(s: &str) -> ParsedEvent {
    parse_event(s.as_bytes()).unwrap()
}

fn parse_json(v: Value) -> ParsedEvent {
    parse_event(v.to_string().as_bytes()).unwrap()
}

fn ice(p: &ParsedEvent) -> &Ice {
    match &p.body {
        Event::Ice(e) => e,
        other => panic!("not an ICE: {other:?}"),
    }
}

fn dice(p: &ParsedEvent) -> &Dice {
    match &p.body {
        Event::Dice(e) => e,
        other => panic!("not a DICE: {other:?}"),
    }
}

fn ace(p: &ParsedEvent) -> &Ace {
    match &p.body {
        Event::Ace(e) => e,
        other => panic!("not an ACE: {other:?}"),
    }
}

fn pie(p: &ParsedEvent) -> &Pie {
    match &p.body {
        Event::Pie(e) => e,
        other => panic!("not a PIE: {other:?}"),
    }
}

fn notify(p: &ParsedEvent) -> &Notify {
    match &p.body {
        Event::Notify(e) => e,
        other => panic!("not a Notify: {other:?}"),
    }
}

fn pointers(p: &ParsedEvent) -> Vec<&str> {
    p.warnings.iter().map(|w| w.pointer.as_str()).collect()
}

// ----- fixtures -------------------------------------------------------------------------

#[test]
fn fixture_ice_java() {
    let p = parse(ICE_JAVA);
    assert_eq!(p.kind, EventKind::Ice);
    assert_eq!(p.callid.as_deref(), Some("a call id"));
    assert_eq!(p.application_key.as_deref(), Some("an app key"));
    assert_eq!(p.timestamp, Some(datetime!(2024-01-16 16:46:36 UTC)));
    assert!(p.warnings.is_empty());
    let e = ice(&p);
    assert_eq!(e.version, Some(1));
    assert_eq!(e.conference_id.as_deref(), Some("a conference id"));
    assert_eq!(
        e.call_resource_url.as_deref(),
        Some("https://calling-euc1.api.sinch.com/calling/v1/calls/id/a call id")
    );
    assert_eq!(e.custom.as_deref(), Some("my custom"));
    assert_eq!(
        e.user_rate,
        Some(Price {
            currency_id: Some("USD".into()),
            amount: Some(0.0),
            ..Price::default()
        })
    );
    assert_eq!(e.cli.as_deref(), Some("cli number"));
    let to = e.to.as_ref().unwrap();
    assert_eq!(to.r#type, Some(DestinationType::Number));
    assert_eq!(to.endpoint.as_deref(), Some("+123456879"));
    assert_eq!(to.e164().as_deref(), Some("+123456879"));
    assert_eq!(e.domain, Some(Domain::Mxp));
    assert_eq!(e.origination_type, Some(Domain::Mxp));
    assert_eq!(e.rdnis.as_deref(), Some("rdnis value"));
    assert_eq!(
        e.call_headers,
        Some(vec![CallHeader {
            key: Some("the key".into()),
            value: Some("the value".into()),
            ..CallHeader::default()
        }])
    );
    assert!(e.extra.is_empty());
    assert_eq!(p.caller(), Some("cli number"));
    assert_eq!(p.caller().and_then(normalize_msisdn), None);
    assert_eq!(p.to_endpoint(), Some("+123456879"));
    assert_eq!(p.custom(), Some("my custom"));
    assert_eq!(p.conference_id(), Some("a conference id"));
    assert_eq!(p.version(), Some(1));
    assert!(p.expects_svaml());
}

#[test]
fn fixture_ice_node() {
    let p = parse(ICE_NODE);
    assert_eq!(p.kind, EventKind::Ice);
    assert_eq!(p.callid.as_deref(), Some("callId"));
    assert_eq!(p.timestamp, Some(datetime!(2023-12-29 15:07:22 UTC)));
    assert!(p.warnings.is_empty());
    let e = ice(&p);
    assert_eq!(e.cli.as_deref(), Some("1234567890"));
    assert_eq!(e.to.as_ref().unwrap().r#type, Some(DestinationType::Did));
    assert_eq!(p.to_endpoint(), Some("+1234567770"));
    assert_eq!(e.domain, Some(Domain::Pstn));
    assert_eq!(e.origination_type, Some(Domain::Pstn));
    assert_eq!(e.rdnis.as_deref(), Some(""));
    assert_eq!(e.call_headers, None);
    assert_eq!(e.user_rate, None);
}

#[test]
fn fixture_ice_nuget() {
    let p = parse(ICE_NUGET);
    assert_eq!(p.kind, EventKind::Ice);
    assert_eq!(
        p.callid.as_deref(),
        Some("241b8ab35e0e83814c4e775a66cf50db@193.45.63.102")
    );
    assert_eq!(
        p.application_key.as_deref(),
        Some("94983f76-12c8-4cb9-9515-4785c7b49ca8")
    );
    assert_eq!(p.timestamp, Some(datetime!(2015-08-06 13:55:39 UTC)));
    let e = ice(&p);
    assert_eq!(e.cli.as_deref(), Some("46708168731"));
    assert_eq!(
        p.caller().and_then(normalize_msisdn).as_deref(),
        Some("+46708168731")
    );
    assert_eq!(
        e.to.as_ref().and_then(Destination::e164).as_deref(),
        Some("+462010000188")
    );
    assert_eq!(e.duration, Some(0));
    assert!(p.warnings.is_empty());
}

#[test]
fn fixture_ace_java() {
    let p = parse(ACE_JAVA);
    assert_eq!(p.kind, EventKind::Ace);
    assert_eq!(p.callid.as_deref(), Some("a call id"));
    assert_eq!(p.application_key.as_deref(), Some("my application key"));
    assert_eq!(p.timestamp, Some(datetime!(2024-01-19 12:49:53 UTC)));
    let e = ace(&p);
    assert_eq!(e.custom.as_deref(), Some("my custom value"));
    assert_eq!(
        e.amd,
        Some(Amd {
            status: Some(AmdStatus::Human),
            reason: Some(AmdReason::LongGreeting),
            duration: Some(15),
            ..Amd::default()
        })
    );
    assert_eq!(p.amd().and_then(|a| a.duration), Some(15));
    assert!(p.expects_svaml());
    assert!(p.warnings.is_empty());
}

#[test]
fn fixture_ace_docs() {
    let p = parse(ACE_DOCS);
    assert_eq!(p.kind, EventKind::Ace);
    assert_eq!(
        p.callid.as_deref(),
        Some("822aa4b7-05b4-4d83-87c7-1f835ee0b6f6_257")
    );
    assert_eq!(p.timestamp, Some(datetime!(2014-09-24 10:59:41 UTC)));
    assert_eq!(p.application_key, None);
    assert_eq!(
        ace(&p),
        &Ace {
            version: Some(1),
            ..Ace::default()
        }
    );
}

#[test]
fn fixture_dice_dotnet_and_java() {
    for (src, ty) in [(DICE_DOTNET, "Number"), (DICE_JAVA, "number")] {
        let p = parse(src);
        assert_eq!(p.kind, EventKind::Dice);
        assert_eq!(p.callid.as_deref(), Some("a call id"));
        assert_eq!(p.timestamp, Some(datetime!(2024-01-19 12:49:53 UTC)));
        assert!(!p.expects_svaml());
        let e = dice(&p);
        assert_eq!(e.reason, Some(DiceReason::ManagerHangup));
        assert_eq!(e.result, Some(DiceResult::Answered));
        assert_eq!(e.debit.as_ref().and_then(|d| d.amount), Some(0.1758));
        assert_eq!(
            e.debit.as_ref().and_then(|d| d.currency_id.as_deref()),
            Some("EUR")
        );
        assert_eq!(e.user_rate.as_ref().and_then(|d| d.amount), Some(0.345));
        let to = e.to.as_ref().unwrap();
        assert_eq!(to.r#type, Some(DestinationType::Number), "type {ty}");
        assert_eq!(to.endpoint.as_deref(), Some("123456789"));
        assert_eq!(to.e164().as_deref(), Some("+123456789"));
        assert_eq!(e.duration, Some(1));
        assert_eq!(e.from.as_deref(), Some("private"));
        assert_eq!(p.caller(), Some("private"));
        assert_eq!(p.caller().and_then(normalize_msisdn), None);
        assert_eq!(p.to_endpoint(), Some("123456789"));
        assert_eq!(e.conference_id.as_deref(), Some("a conference id"));
        assert!(p.warnings.is_empty());
    }
}

#[test]
fn fixture_pie_java() {
    let p = parse(PIE_JAVA);
    assert_eq!(p.kind, EventKind::Pie);
    assert_eq!(p.callid.as_deref(), Some("a call id"));
    assert_eq!(p.timestamp, Some(datetime!(2024-01-23 15:04:28 UTC)));
    let m = p.menu_result().unwrap();
    assert_eq!(m.menu_id.as_deref(), Some("confirm"));
    assert_eq!(m.r#type, Some(MenuResultType::Sequence));
    assert_eq!(m.value.as_deref(), Some("1452"));
    assert_eq!(m.input_method, Some(InputMethod::Dtmf));
    assert!(m.extra.is_empty());
    assert_eq!(pie(&p).conference_id.as_deref(), Some("a conference id"));
    assert!(p.expects_svaml());
}

#[test]
fn fixture_pie_node_keeps_add_to_context() {
    let p = parse(PIE_NODE);
    assert_eq!(p.kind, EventKind::Pie);
    assert_eq!(p.callid.as_deref(), Some("callId"));
    let m = p.menu_result().unwrap();
    assert_eq!(m.value.as_deref(), Some("6789"));
    assert_eq!(m.extra.get("addToContext"), Some(&json!([])));
    assert_eq!(m.extra.len(), 1);
    assert!(p.warnings.is_empty());
}

#[test]
fn fixture_notify_java() {
    let p = parse(NOTIFY_JAVA);
    assert_eq!(p.kind, EventKind::Notify);
    assert_eq!(p.callid.as_deref(), Some("a call id"));
    assert_eq!(p.timestamp, None);
    assert!(!p.expects_svaml());
    let e = notify(&p);
    assert_eq!(e.r#type, Some(NotifyType::RecordingFinished));
    assert_eq!(e.destination.as_deref(), Some("a destination"));
    assert_eq!(e.custom.as_deref(), Some("my custom value"));
    let amd = e.amd.as_ref().unwrap();
    assert_eq!(amd.status, Some(AmdStatus::Hangup));
    assert_eq!(amd.reason, Some(AmdReason::InitialSilence));
    assert_eq!(amd.duration, Some(32));
    assert!(p.warnings.is_empty());
}

// ----- envelope and leniency -----------------------------------------------------------

#[test]
fn call_id_variants() {
    let p = parse(r#"{"event":"ace","callId":"abc"}"#);
    assert_eq!(p.callid.as_deref(), Some("abc"));
    assert!(p.warnings.is_empty());
    assert!(ace(&p).extra.is_empty());

    let p = parse(r#"{"event":"ace","callid":"lower","callId":"camel"}"#);
    assert_eq!(p.callid.as_deref(), Some("lower"));
    assert_eq!(pointers(&p), ["/callId"]);

    let p = parse(r#"{"event":"ace","callid":null,"callId":"camel"}"#);
    assert_eq!(p.callid.as_deref(), Some("camel"));
    assert!(p.warnings.is_empty());

    let p = parse(r#"{"event":"ace","callid":42}"#);
    assert_eq!(p.callid.as_deref(), Some("42"));
    assert_eq!(pointers(&p), ["/callid"]);
}

#[test]
fn event_kind_case_insensitive_and_unknown() {
    assert_eq!(parse(r#"{"event":"ICE"}"#).kind, EventKind::Ice);
    assert_eq!(parse(r#"{"event":"Ice"}"#).kind, EventKind::Ice);
    assert_eq!(parse(r#"{"event":"DiCe"}"#).kind, EventKind::Dice);
    assert_eq!(parse(r#"{"event":"NOTIFY"}"#).kind, EventKind::Notify);
    let p = parse(r#"{"event":"foo","callid":"c1","other":1}"#);
    assert_eq!(p.kind, EventKind::Unknown("foo".into()));
    assert_eq!(p.kind.as_str(), "foo");
    assert_eq!(p.body, Event::Unknown);
    assert_eq!(p.callid.as_deref(), Some("c1"));
    assert!(!p.expects_svaml());
    let long = "x".repeat(100);
    let kind = EventKind::parse(&long);
    assert_eq!(kind.as_str().len(), MAX_UNKNOWN_EVENT_LEN);
    let kind = EventKind::parse(&"é".repeat(70));
    assert_eq!(kind.as_str().chars().count(), MAX_UNKNOWN_EVENT_LEN);
    assert_eq!(EventKind::Pie.as_str(), "pie");
    assert_eq!(EventKind::Notify.to_string(), "notify");
    assert!(EventKind::Ice.expects_svaml());
    assert!(EventKind::Ace.expects_svaml());
    assert!(EventKind::Pie.expects_svaml());
    assert!(!EventKind::Dice.expects_svaml());
    assert!(!EventKind::Notify.expects_svaml());
}

#[test]
fn fatal_errors() {
    match parse_event(b"{\"event\": \"ice\",").unwrap_err() {
        EventError::MalformedJson {
            line,
            column,
            detail,
        } => {
            assert_eq!(line, 1);
            assert_eq!(column, 16);
            assert_eq!(detail, "EOF while parsing a value");
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = parse_event(b"{\n \"event\": \"ice\" x}").unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed JSON at line 2, column 17: expected `,` or `}`"
    );
    assert!(matches!(
        parse_event(b"").unwrap_err(),
        EventError::MalformedJson {
            line: 1,
            column: 0,
            ..
        }
    ));
    assert!(matches!(
        parse_event(b"\xff\xfe").unwrap_err(),
        EventError::MalformedJson { .. }
    ));
    assert_eq!(parse_event(b"[]").unwrap_err(), EventError::NotAnObject);
    assert_eq!(
        parse_event(b"\"ice\"").unwrap_err(),
        EventError::NotAnObject
    );
    assert_eq!(parse_event(b"null").unwrap_err(), EventError::NotAnObject);
    assert_eq!(parse_event(b"{}").unwrap_err(), EventError::MissingEvent);
    assert_eq!(
        parse_event(br#"{"event":null}"#).unwrap_err(),
        EventError::MissingEvent
    );
    assert_eq!(
        parse_event(br#"{"event":5}"#).unwrap_err(),
        EventError::EventNotString
    );
    assert_eq!(
        parse_event(br#"{"event":["ice"]}"#).unwrap_err(),
        EventError::EventNotString
    );
    assert_eq!(
        EventError::NotAnObject.to_string(),
        "callback body is not a JSON object"
    );
    assert_eq!(
        EventError::MissingEvent.to_string(),
        "callback body has no \"event\" field"
    );
    assert_eq!(
        EventError::EventNotString.to_string(),
        "callback \"event\" field is not a string"
    );
}

#[test]
fn malformed_detail_does_not_echo_body() {
    let body = br#"{"event":"ice","cli":"+46708168731" "secret"}"#;
    let err = parse_event(body).unwrap_err().to_string();
    assert!(!err.contains("46708168731"), "{err}");
    assert!(!err.contains("secret"), "{err}");
}

#[test]
fn utf8_bom_is_accepted() {
    let p = parse_event(b"\xEF\xBB\xBF{\"event\":\"ace\"}").unwrap();
    assert_eq!(p.kind, EventKind::Ace);
}

#[test]
fn timestamps() {
    let p = parse(r#"{"event":"ace","timestamp":"2014-06-02T15:39:31.2729234Z"}"#);
    assert_eq!(
        p.timestamp,
        Some(datetime!(2014-06-02 15:39:31.2729234 UTC))
    );
    let p = parse(r#"{"event":"ace","timestamp":"yesterday"}"#);
    assert_eq!(p.timestamp, None);
    assert_eq!(pointers(&p), ["/timestamp"]);
    let p = parse(r#"{"event":"ace","timestamp":1705423596}"#);
    assert_eq!(p.timestamp, None);
    assert_eq!(pointers(&p), ["/timestamp"]);
}

#[test]
fn msisdn_normalization() {
    assert_eq!(
        normalize_msisdn("46708168731").as_deref(),
        Some("+46708168731")
    );
    assert_eq!(
        normalize_msisdn("+46708168731").as_deref(),
        Some("+46708168731")
    );
    assert_eq!(normalize_msisdn(" 123 ").as_deref(), Some("+123"));
    assert_eq!(normalize_msisdn("private"), None);
    assert_eq!(normalize_msisdn(""), None);
    assert_eq!(normalize_msisdn("+"), None);
    assert_eq!(normalize_msisdn("++123"), None);
    assert_eq!(normalize_msisdn("+46 70 816"), None);
    assert_eq!(normalize_msisdn("1234567890123456"), None);
    assert_eq!(normalize_msisdn("sip:123@host"), None);
    let user = Destination {
        r#type: Some(DestinationType::Username),
        endpoint: Some("12345".into()),
        ..Destination::default()
    };
    assert_eq!(user.e164(), None);
    let untyped = Destination {
        endpoint: Some("12345".into()),
        ..Destination::default()
    };
    assert_eq!(untyped.e164().as_deref(), Some("+12345"));
}

#[test]
fn enums_case_insensitive_and_open() {
    assert_eq!(DestinationType::parse("NUMBER"), DestinationType::Number);
    assert_eq!(
        DestinationType::parse("Websocket"),
        DestinationType::Websocket
    );
    assert_eq!(
        DestinationType::parse("email"),
        DestinationType::Other("email".into())
    );
    assert_eq!(Domain::parse("PSTN"), Domain::Pstn);
    assert_eq!(Domain::parse("MXP").as_str(), "mxp");
    assert_eq!(DiceReason::parse("n/a"), DiceReason::NotApplicable);
    assert_eq!(
        DiceReason::parse("callbackerror"),
        DiceReason::CallbackError
    );
    assert_eq!(DiceReason::parse("Congestion").as_str(), "CONGESTION");
    assert_eq!(
        DiceReason::parse("SOMETHINGNEW"),
        DiceReason::Other("SOMETHINGNEW".into())
    );
    assert_eq!(DiceResult::parse("noanswer"), DiceResult::NoAnswer);
    assert_eq!(
        MenuResultType::parse("InvalidInput"),
        MenuResultType::InvalidInput
    );
    assert_eq!(MenuResultType::parse("Return"), MenuResultType::Return);
    assert_eq!(AmdStatus::parse("NotSure"), AmdStatus::NotSure);
    assert_eq!(
        AmdStatus::parse("inprogress"),
        AmdStatus::Other("inprogress".into())
    );
    assert_eq!(AmdReason::parse("N/A"), AmdReason::NotApplicable);
    assert_eq!(NotifyType::parse("CallingError"), NotifyType::CallingError);
    assert_eq!(InputMethod::parse("VOICE"), InputMethod::Voice);

    let p = parse_json(json!({
        "event": "dice", "reason": "callerhangup", "result": "Canceled",
        "to": {"type": "Number", "endpoint": "+1555"}
    }));
    let e = dice(&p);
    assert_eq!(e.reason, Some(DiceReason::CallerHangup));
    assert_eq!(e.result, Some(DiceResult::Other("Canceled".into())));
    assert!(p.warnings.is_empty());
}

#[test]
fn numeric_strings_and_missing_version() {
    let p = parse_json(json!({
        "event": "dice", "callid": "c", "duration": "15", "version": " 1 ",
        "debit": {"currencyId": "EUR", "amount": "0.25"}
    }));
    let e = dice(&p);
    assert_eq!(e.duration, Some(15));
    assert_eq!(e.version, Some(1));
    assert_eq!(e.debit.as_ref().and_then(|d| d.amount), Some(0.25));
    assert!(p.warnings.is_empty());

    let p = parse_json(json!({"event": "ice", "duration": 15.0, "amd": null}));
    assert_eq!(ice(&p).duration, Some(15));
    assert_eq!(ice(&p).version, None);
    assert_eq!(p.version(), None);
    assert!(p.warnings.is_empty());

    let p = parse_json(json!({"event": "ice", "duration": 15.7}));
    assert_eq!(ice(&p).duration, Some(15));
    assert_eq!(pointers(&p), ["/duration"]);

    let p = parse_json(json!({"event": "ice", "duration": 1e300}));
    assert_eq!(ice(&p).duration, None);
    assert_eq!(pointers(&p), ["/duration"]);

    let p = parse_json(json!({"event": "ice", "duration": u64::MAX}));
    assert_eq!(ice(&p).duration, None);
    assert_eq!(pointers(&p), ["/duration"]);

    let p = parse_json(json!({"event": "dice", "debit": {"amount": "NaN"}}));
    assert_eq!(dice(&p).debit.as_ref().and_then(|d| d.amount), None);
    assert_eq!(pointers(&p), ["/debit/amount"]);
}

#[test]
fn wrong_types_give_warnings_ice() {
    let p = parse_json(json!({
        "event": "ice",
        "callid": "c1",
        "version": "one",
        "callResourceUrl": {},
        "custom": ["x"],
        "userRate": "abc",
        "cli": 46708168731u64,
        "to": "+46708168731",
        "domain": 7,
        "originationType": true,
        "duration": {},
        "rdnis": [],
        "callHeaders": {"key": "k"},
        "conferenceId": {},
        "user": false,
        "applicationKey": []
    }));
    assert_eq!(p.kind, EventKind::Ice);
    assert_eq!(p.callid.as_deref(), Some("c1"));
    assert_eq!(p.application_key, None);
    let e = ice(&p);
    assert_eq!(e.version, None);
    assert_eq!(e.call_resource_url, None);
    assert_eq!(e.custom, None);
    assert_eq!(e.user_rate, None);
    assert_eq!(e.cli.as_deref(), Some("46708168731"));
    assert_eq!(
        e.to,
        Some(Destination {
            endpoint: Some("+46708168731".into()),
            ..Destination::default()
        })
    );
    assert_eq!(p.to_endpoint(), Some("+46708168731"));
    assert_eq!(e.domain, Some(Domain::Other("7".into())));
    assert_eq!(e.origination_type, Some(Domain::Other("true".into())));
    assert_eq!(e.duration, None);
    assert_eq!(e.rdnis, None);
    assert_eq!(e.call_headers, None);
    assert_eq!(e.conference_id, None);
    assert_eq!(e.user.as_deref(), Some("false"));
    assert!(e.extra.is_empty());
    let mut ptrs = pointers(&p);
    ptrs.sort_unstable();
    assert_eq!(
        ptrs,
        [
            "/applicationKey",
            "/callHeaders",
            "/callResourceUrl",
            "/cli",
            "/conferenceId",
            "/custom",
            "/domain",
            "/duration",
            "/originationType",
            "/rdnis",
            "/to",
            "/user",
            "/userRate",
            "/version",
        ]
    );
    let w = p
        .warnings
        .iter()
        .find(|w| w.pointer == "/userRate")
        .unwrap();
    assert_eq!(w.message, "expected a price object, got a string; ignored");
    let w = p
        .warnings
        .iter()
        .find(|w| w.pointer == "/duration")
        .unwrap();
    assert_eq!(w.message, "expected an integer, got an object; ignored");
    let w = p.warnings.iter().find(|w| w.pointer == "/cli").unwrap();
    assert_eq!(w.message, "expected a string, got a number; converted");
}

#[test]
fn wrong_types_give_warnings_nested() {
    let p = parse_json(json!({
        "event": "ice",
        "to": {"type": 5, "endpoint": {"x": 1}, "note": "kept"},
        "userRate": {"currencyId": 840, "amount": "abc"},
        "callHeaders": [{"key": "a", "value": 1}, "bad", {"key": ["k"]}]
    }));
    let e = ice(&p);
    let to = e.to.as_ref().unwrap();
    assert_eq!(to.r#type, Some(DestinationType::Other("5".into())));
    assert_eq!(to.endpoint, None);
    assert_eq!(to.extra.get("note"), Some(&json!("kept")));
    let rate = e.user_rate.as_ref().unwrap();
    assert_eq!(rate.currency_id.as_deref(), Some("840"));
    assert_eq!(rate.amount, None);
    let headers = e.call_headers.as_ref().unwrap();
    assert_eq!(headers.len(), 2);
    assert_eq!(headers[0].value.as_deref(), Some("1"));
    assert_eq!(headers[1].key, None);
    assert_eq!(
        pointers(&p),
        [
            "/userRate/currencyId",
            "/userRate/amount",
            "/to/type",
            "/to/endpoint",
            "/callHeaders/0/value",
            "/callHeaders/1",
            "/callHeaders/2/key",
        ]
    );
}

#[test]
fn wrong_types_give_warnings_ace_pie_notify_dice() {
    let p = parse_json(json!({"event": "ace", "amd": []}));
    assert_eq!(ace(&p).amd, None);
    assert_eq!(pointers(&p), ["/amd"]);
    assert_eq!(
        p.warnings[0].message,
        "expected an AMD object, got an array; ignored"
    );

    let p = parse_json(json!({"event": "ace", "amd": {"status": 1, "duration": "x"}}));
    let amd = ace(&p).amd.as_ref().unwrap();
    assert_eq!(amd.status, Some(AmdStatus::Other("1".into())));
    assert_eq!(amd.duration, None);
    assert_eq!(pointers(&p), ["/amd/status", "/amd/duration"]);

    let p = parse_json(json!({
        "event": "pie",
        "menuResult": {"menuId": "main", "type": "return", "value": 5, "inputMethod": []}
    }));
    let m = p.menu_result().unwrap();
    assert_eq!(m.value.as_deref(), Some("5"));
    assert_eq!(m.r#type, Some(MenuResultType::Return));
    assert_eq!(m.input_method, None);
    assert_eq!(
        pointers(&p),
        ["/menuResult/value", "/menuResult/inputMethod"]
    );

    let p = parse_json(json!({"event": "pie", "menuResult": "1234"}));
    assert_eq!(p.menu_result(), None);
    assert_eq!(pointers(&p), ["/menuResult"]);

    let p = parse_json(json!({
        "event": "notify", "type": "callingerror", "errorCode": "40001",
        "errorMsg": "Illegal SVAML", "amd": "human", "destination": 1
    }));
    let n = notify(&p);
    assert_eq!(n.r#type, Some(NotifyType::CallingError));
    assert_eq!(n.error_code, Some(40001));
    assert_eq!(n.error_msg.as_deref(), Some("Illegal SVAML"));
    assert_eq!(n.amd, None);
    assert_eq!(n.destination.as_deref(), Some("1"));
    assert_eq!(pointers(&p), ["/destination", "/amd"]);

    let p = parse_json(json!({
        "event": "dice", "debit": 0.5, "userRate": [], "to": 5, "from": {},
        "reason": [], "result": {}
    }));
    let d = dice(&p);
    assert_eq!(d.debit, None);
    assert_eq!(d.user_rate, None);
    assert_eq!(d.to, None);
    assert_eq!(d.from, None);
    assert_eq!(d.reason, None);
    assert_eq!(d.result, None);
    assert_eq!(
        pointers(&p),
        ["/reason", "/result", "/debit", "/userRate", "/to", "/from"]
    );
}

#[test]
fn unknown_fields_kept_in_extra() {
    let p = parse_json(json!({
        "event": "ice", "callid": "c", "timestamp": "2024-01-16T16:46:36Z",
        "applicationKey": "k", "user": "legacy-user", "cookies": {"a": "b"},
        "reference": "r1", "delayed": false
    }));
    let e = ice(&p);
    assert_eq!(e.user.as_deref(), Some("legacy-user"));
    let keys: Vec<&str> = e.extra.keys().map(String::as_str).collect();
    assert_eq!(keys, ["cookies", "delayed", "reference"]);
    assert_eq!(e.extra.get("cookies"), Some(&json!({"a": "b"})));

    let p = parse_json(json!({
        "event": "notify", "applicationKey": "k", "timestamp": "2024-01-16T16:46:36Z"
    }));
    assert!(notify(&p).extra.is_empty());
    assert_eq!(p.application_key.as_deref(), Some("k"));
}

#[test]
fn pointer_escaping() {
    assert_eq!(escape_pointer_token("a/b~c"), "a~1b~0c");
}

#[test]
fn serializes_camel_case_skipping_none() {
    let p = parse(PIE_NODE);
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(
        v,
        json!({
            "kind": "pie",
            "callid": "callId",
            "applicationKey": "appKey",
            "timestamp": "2023-12-29T15:07:22Z",
            "body": {
                "version": 1,
                "menuResult": {
                    "menuId": "confirm",
                    "type": "sequence",
                    "value": "6789",
                    "inputMethod": "dtmf",
                    "extra": {"addToContext": []}
                }
            }
        })
    );

    let p = parse(DICE_DOTNET);
    let v = serde_json::to_value(&p.body).unwrap();
    assert_eq!(v["to"], json!({"type": "number", "endpoint": "123456789"}));
    assert_eq!(v["reason"], json!("MANAGERHANGUP"));
    assert_eq!(v["userRate"], json!({"currencyId": "USD", "amount": 0.345}));
    assert_eq!(v["conferenceId"], json!("a conference id"));

    let p = parse(r#"{"event":"foo","duration":"x"}"#);
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v, json!({"kind": "foo", "body": null}));

    let p = parse(r#"{"event":"ace","amd":[],"timestamp":"2024-01-16T16:46:36.5+02:00"}"#);
    let v = serde_json::to_value(&p).unwrap();
    // Timestamps are normalized to UTC (the same instant).
    assert_eq!(v["timestamp"], json!("2024-01-16T14:46:36.5Z"));
    assert_eq!(
        v["warnings"],
        json!([{"pointer": "/amd", "message": "expected an AMD object, got an array; ignored"}])
    );
}

#[test]
fn the_body_as_json_skips_a_byte_order_mark() {
    let p = parse(ICE_NUGET);
    let mut with_bom = b"\xEF\xBB\xBF".to_vec();
    with_bom.extend_from_slice(ICE_NUGET.as_bytes());
    let whole = body_json(&with_bom).expect("json");
    assert_eq!(whole["cli"], json!("46708168731"));
    assert_eq!(whole["duration"], json!(0));
    assert_eq!(p.caller(), Some("46708168731"));
    assert_eq!(body_json(b"{not json"), None);
}

#[test]
fn deeply_nested_body_is_an_error_not_a_crash() {
    let body = format!(
        "{{\"event\":\"ice\",\"x\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert!(matches!(
        parse_event(body.as_bytes()).unwrap_err(),
        EventError::MalformedJson { .. }
    ));
}

// ----- property tests ------------------------------------------------------------------

const FIELD_NAMES: &[&str] = &[
    "callid",
    "callId",
    "timestamp",
    "applicationKey",
    "version",
    "custom",
    "userRate",
    "cli",
    "to",
    "domain",
    "originationType",
    "duration",
    "rdnis",
    "callHeaders",
    "conferenceId",
    "user",
    "callResourceUrl",
    "amd",
    "debit",
    "from",
    "reason",
    "result",
    "menuResult",
    "type",
    "destination",
    "errorCode",
    "errorMsg",
    "endpoint",
    "currencyId",
    "amount",
    "status",
    "menuId",
    "value",
    "inputMethod",
    "key",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        "[0-9+. -]{0,18}".prop_map(Value::String),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?(Z|[+-][0-9]{2}:?[0-9]{0,2})?"
            .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((arb_key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(FIELD_NAMES).prop_map(str::to_owned),
        "\\PC{0,8}",
    ]
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_event(&bytes);
    }

    #[test]
    fn never_panics_on_arbitrary_text(s in "\\PC{0,200}") {
        let _ = parse_event(s.as_bytes());
    }

    #[test]
    fn never_fails_on_objects_with_event(
        event in prop::sample::select(&["ice", "ace", "dice", "pie", "notify", "ICE", "x"][..]),
        fields in prop::collection::vec((arb_key(), arb_json()), 0..16),
    ) {
        let mut obj: Map<String, Value> = fields.into_iter().collect();
        obj.insert("event".into(), Value::String(event.to_owned()));
        let body = Value::Object(obj).to_string();
        let parsed = parse_event(body.as_bytes());
        prop_assert!(parsed.is_ok(), "{:?}", parsed.err());
        if let Ok(p) = parsed {
            prop_assert_eq!(&p.kind, &EventKind::parse(event));
            // Serializing the typed view never fails either.
            prop_assert!(serde_json::to_string(&p).is_ok());
            for w in &p.warnings {
                prop_assert!(w.pointer.starts_with('/'));
            }
        }
    }
}
