//! The seed set-up: the prediction through HTTPS behind key-auth, instance-header and
//! path-rewrite, exactly as a user sends it.

use wasmgate_tests::{DEMO_KEY, Harness, Proto, SEED_ROUTE};

const GOOD: [(&str, &str); 2] = [("x-instance-id", "kong_ins"), ("apikey", DEMO_KEY)];

#[tokio::test]
async fn the_seed_request_gets_a_prediction_over_https_h1_and_h2() {
    let h = Harness::start(SEED_ROUTE).await;
    let r = h.predict("/serving-uci/uci/prediction", &GOOD).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let price = r.json()["result"]["price"][0][0].as_f64().expect("a price");
    assert!((10.0..30.0).contains(&price), "{price}");

    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(&GOOD);
    let r = h
        .send(
            Proto::Https2,
            "POST",
            "/serving-uci/uci/prediction",
            &headers,
            wasmgate_tests::DEMO_BODY,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["result"]["price"][0][0].as_f64(), Some(price));

    let r = h
        .send(
            Proto::Http1,
            "POST",
            "/serving-uci/uci/prediction",
            &headers,
            wasmgate_tests::DEMO_BODY,
        )
        .await;
    assert_eq!(r.status, 200, "plain HTTP listener: {:?}", r.body);
}

#[tokio::test]
async fn missing_or_wrong_key_gets_401_with_a_reason() {
    let h = Harness::start(SEED_ROUTE).await;
    let path = "/serving-uci/uci/prediction";
    let r = h.predict(path, &[("x-instance-id", "kong_ins")]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["message"], "No API key found in request");
    assert!(r.header("www-authenticate").is_some());

    let r = h
        .predict(path, &[("x-instance-id", "kong_ins"), ("apikey", "wrong")])
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["message"], "Invalid authentication credentials");
    assert_eq!(h.recorder.count(), 0, "nothing reached the model server");
}

#[tokio::test]
async fn missing_or_wrong_instance_header_gets_403_with_a_reason() {
    let h = Harness::start(SEED_ROUTE).await;
    let path = "/serving-uci/uci/prediction";
    let r = h.predict(path, &[("apikey", DEMO_KEY)]).await;
    assert_eq!(r.status, 403);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("X-INSTANCE-ID"),
        "{:?}",
        r.body
    );

    let r = h
        .predict(path, &[("apikey", DEMO_KEY), ("x-instance-id", "other")])
        .await;
    assert_eq!(r.status, 403);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("X-INSTANCE-ID"),
        "{:?}",
        r.body
    );
    assert_eq!(h.recorder.count(), 0);
}

#[tokio::test]
async fn the_model_servers_own_path_is_not_served() {
    let h = Harness::start(SEED_ROUTE).await;
    for path in [
        "/uci/prediction",
        "/serving-ucix/uci/prediction",
        "/SERVING-UCI/uci/prediction",
    ] {
        let r = h.predict(path, &GOOD).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json()["message"], "no route matches the path");
    }
    assert_eq!(h.recorder.count(), 0);
}

#[tokio::test]
async fn the_public_path_maps_onto_the_internal_one_and_credentials_stay_behind() {
    let h = Harness::start(SEED_ROUTE).await;
    let r = h
        .predict(
            "/serving-uci/uci/prediction?trace=1",
            &[
                ("x-instance-id", "kong_ins"),
                ("apikey", DEMO_KEY),
                ("x-consumer-username", "admin"),
                ("x-forwarded-for", "10.9.9.9"),
                ("connection", "x-secret"),
                ("x-secret", "hop"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        r.header("server").is_none(),
        "the upstream's identity is hidden"
    );
    let seen = h
        .recorder
        .last_request()
        .expect("the upstream got the request");
    assert_eq!(seen.path, "/uci/prediction?trace=1");
    assert!(seen.headers.get("apikey").is_none(), "the key is stripped");
    assert_eq!(
        seen.headers["x-consumer-username"], "demo",
        "not the client's claim"
    );
    assert_eq!(seen.headers["x-instance-id"], "kong_ins");
    assert_eq!(
        seen.headers["x-forwarded-for"], "127.0.0.1",
        "from the real peer"
    );
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert!(
        seen.headers.get("x-secret").is_none(),
        "headers named by Connection are hop-by-hop"
    );
    assert_eq!(seen.headers["host"], h.upstream.local_addr().to_string());
    assert!(seen.headers.get("x-request-id").is_some());
}

#[tokio::test]
async fn a_second_consumer_with_a_plain_key_is_named_upstream() {
    let h = Harness::start(SEED_ROUTE).await;
    let r = h
        .predict(
            "/serving-uci/uci/prediction",
            &[("x-instance-id", "kong_ins"), ("apikey", "second-key")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        h.recorder.last_request().unwrap().headers["x-consumer-username"],
        "other"
    );
}

#[tokio::test]
async fn encoded_and_dotted_paths_reach_only_the_intended_path_or_are_refused() {
    let h = Harness::start(SEED_ROUTE).await;
    // Normalised onto the route: reach /uci/prediction through every plugin.
    for path in [
        "/%73erving-uci/uci/prediction",
        "//serving-uci/uci/prediction",
        "/serving-uci//uci/./prediction",
    ] {
        let r = h.predict(path, &GOOD).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        assert_eq!(
            h.recorder.last_request().unwrap().path,
            "/uci/prediction",
            "{path}"
        );
        let r = h.predict(path, &[("x-instance-id", "kong_ins")]).await;
        assert_eq!(r.status, 401, "{path} must not skip key-auth");
    }
    // Refused or unrouted: never forwarded.
    let before = h.recorder.count();
    for (path, status) in [
        ("/serving-uci../admin", 404),
        ("/serving-uci%2e%2e/admin", 404),
        ("/serving-uci/%2e%2e/%2e%2e/internal", 400),
        ("/serving-uci/..;x=1/..;/internal", 400),
        ("/serving-uci%2Fx", 400),
        ("/serving-uci%252e%252e/", 400),
        ("/serving-uci/x%00", 400),
        ("/serving-uci/../uci/prediction", 404),
    ] {
        let r = h.predict(path, &GOOD).await;
        assert_eq!(r.status, status, "{path}: {:?}", r.body);
    }
    assert_eq!(h.recorder.count(), before);
}

/// The plugins read each value in the buffer the previous one came in (the SDK's
/// `read_header`): values longer and shorter than the last, and ones that differ from a good
/// one only by what follows it, must each be read exactly.
#[tokio::test]
async fn values_of_every_length_in_turn_are_read_exactly() {
    let h = Harness::start(SEED_ROUTE).await;
    let path = "/serving-uci/uci/prediction";
    let long_key = "k".repeat(3000);
    let cases: [(&str, &str, u16); 9] = [
        (DEMO_KEY, "kong_ins", 200),
        (&format!("{DEMO_KEY}x"), "kong_ins", 401),
        (&DEMO_KEY[..DEMO_KEY.len() - 1], "kong_ins", 401),
        (DEMO_KEY, "kong_ins", 200),
        (&long_key, "kong_ins", 401),
        (DEMO_KEY, "kong_ins_and_more", 403),
        (DEMO_KEY, "kong_in", 403),
        (DEMO_KEY, "kong_ins", 200),
        ("k", "kong_ins", 401),
    ];
    // Each case twice in a row: requests take the plugin's instances in turn (the harness
    // keeps two), so each instance sees every case, in this order.
    for (i, (key, instance, want)) in cases.iter().enumerate() {
        for _ in 0..2 {
            let r = h
                .predict(path, &[("apikey", key), ("x-instance-id", instance)])
                .await;
            assert_eq!(r.status, *want, "case {i}: {:?}", r.body);
        }
    }

    // A path longer than the last, then the short one again: the upstream sees each exactly.
    let query = "q=".to_owned() + &"v".repeat(500);
    for (public, internal) in [
        (
            format!("{path}?{query}"),
            format!("/uci/prediction?{query}"),
        ),
        (path.to_owned(), "/uci/prediction".to_owned()),
        (format!("{path}?a=1"), "/uci/prediction?a=1".to_owned()),
    ] {
        for _ in 0..2 {
            let r = h.predict(&public, &GOOD).await;
            assert_eq!(r.status, 200, "{public}: {:?}", r.body);
            let seen = h.recorder.last_request().expect("the upstream got it");
            assert_eq!(seen.path, internal);
        }
    }
}
