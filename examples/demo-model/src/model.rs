//! The model: a fixed linear regression over the 13 UCI housing features, and the validation of
//! a Paddle Serving prediction request into rows of those features.

use serde_json::{Map, Value};

/// How many features one row of `x` has.
pub const FEATURES: usize = 13;

/// The UCI (Boston) housing features, in the order `x` lists them.
pub const FEATURE_NAMES: [&str; FEATURES] = [
    "CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT",
];

/// The name of the model's one feed variable.
pub const FEED_VAR: &str = "x";

/// The names of the variables a request may fetch.
pub const FETCH_VARS: [&str; 1] = ["price"];

/// The weights of the linear model, one per feature of [`FEATURE_NAMES`].
///
/// They are the coefficients of an ordinary least-squares fit of the housing data, rescaled to
/// the normalisation Paddle's `fit_a_line` example feeds its model (each feature minus its mean,
/// divided by its range) and rounded: more rooms (`RM`) raise the price, a higher share of
/// lower-status population (`LSTAT`) and a longer distance to employment centres (`DIS`) lower it.
pub const WEIGHTS: [f64; FEATURES] = [
    -9.6, 4.6, 0.6, 2.7, -8.6, 19.8, 0.1, -16.2, 7.0, -6.5, -9.0, 3.7, -19.0,
];

/// The bias of the linear model, in thousands of dollars.
///
/// Chosen so that the request from Paddle Serving's `uci_housing` README prices at about 18.90,
/// the answer its trained `fit_a_line` model gives there (`{"result":{"price":[[18.9011...]]}}`).
pub const BIAS: f64 = 20.14;

/// Predicts the median house price, in thousands of dollars, for one normalised feature row.
pub fn predict(x: &[f64; FEATURES]) -> f64 {
    x.iter().zip(WEIGHTS).map(|(x, w)| x * w).sum::<f64>() + BIAS
}

/// A prediction request that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    /// One row per feed entry, in request order.
    pub rows: Vec<[f64; FEATURES]>,
    /// The requested fetch variables, in request order, without duplicates.
    pub fetch: Vec<&'static str>,
}

impl Request {
    /// Validates a request body of the shape `{"feed":[{"x":[13 numbers]}],"fetch":["price"]}`.
    ///
    /// The error names what is wrong, where, and what was expected.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|err| format!("request body is not valid JSON: {err}"))?;
        let Value::Object(object) = value else {
            return Err(format!(
                "request body must be a JSON object like {EXAMPLE}, found {}",
                kind(&value)
            ));
        };
        let rows = parse_feed(&object)?;
        let fetch = parse_fetch(&object)?;
        Ok(Self { rows, fetch })
    }

    /// The `result` object of the answer: each fetch variable maps to one `[price]` per row.
    pub fn answer(&self) -> Result<Value, String> {
        let mut prices = Vec::with_capacity(self.rows.len());
        for (i, row) in self.rows.iter().enumerate() {
            let price = predict(row);
            if !price.is_finite() {
                return Err(format!("feed[{i}].x is out of range: the price overflows"));
            }
            prices.push(Value::from(vec![price]));
        }
        let mut result = Map::new();
        for name in &self.fetch {
            // `price` is the only fetch variable; another would need its own computation here.
            result.insert((*name).to_owned(), Value::from(prices.clone()));
        }
        Ok(Value::Object(result))
    }
}

const EXAMPLE: &str = r#"{"feed":[{"x":[13 numbers]}],"fetch":["price"]}"#;

fn parse_feed(object: &Map<String, Value>) -> Result<Vec<[f64; FEATURES]>, String> {
    let feed = match object.get("feed") {
        None => return Err(format!("missing field `feed`: expected {EXAMPLE}")),
        Some(Value::Array(feed)) => feed,
        Some(other) => {
            return Err(format!(
                "`feed` must be a list of feed entries like [{{\"x\":[13 numbers]}}], found {}",
                kind(other)
            ));
        }
    };
    if feed.is_empty() {
        return Err("`feed` is empty: give at least one entry like {\"x\":[13 numbers]}".into());
    }
    feed.iter()
        .enumerate()
        .map(|(i, entry)| parse_entry(i, entry))
        .collect()
}

fn parse_entry(i: usize, entry: &Value) -> Result<[f64; FEATURES], String> {
    let Value::Object(entry) = entry else {
        return Err(format!(
            "feed[{i}] must be an object like {{\"x\":[13 numbers]}}, found {}",
            kind(entry)
        ));
    };
    if let Some(unknown) = entry.keys().find(|key| *key != FEED_VAR) {
        return Err(format!(
            "feed[{i}] names unknown feed variable `{unknown}`: the model's only feed variable is `{FEED_VAR}`"
        ));
    }
    let x = match entry.get(FEED_VAR) {
        None => {
            return Err(format!(
                "feed[{i}] has no `x`: expected {{\"x\":[13 numbers]}}"
            ));
        }
        Some(Value::Array(x)) => x,
        Some(other) => {
            return Err(format!(
                "feed[{i}].x must be a list of {FEATURES} numbers, found {}",
                kind(other)
            ));
        }
    };
    if x.len() != FEATURES {
        let plural = if x.len() == 1 { "" } else { "s" };
        return Err(format!(
            "feed[{i}].x has {} number{plural}, the model expects {FEATURES}",
            x.len()
        ));
    }
    let mut row = [0.0; FEATURES];
    for (j, (slot, value)) in row.iter_mut().zip(x).enumerate() {
        *slot = value
            .as_f64()
            .ok_or_else(|| format!("feed[{i}].x[{j}] is not a number, found {}", kind(value)))?;
    }
    Ok(row)
}

fn parse_fetch(object: &Map<String, Value>) -> Result<Vec<&'static str>, String> {
    let expected = r#"["price"]"#;
    let fetch = match object.get("fetch") {
        None => return Err(format!("missing field `fetch`: expected {expected}")),
        Some(Value::Array(fetch)) => fetch,
        Some(other) => {
            return Err(format!(
                "`fetch` must be a list of variable names like {expected}, found {}",
                kind(other)
            ));
        }
    };
    if fetch.is_empty() {
        return Err(format!("`fetch` is empty: expected {expected}"));
    }
    let mut names: Vec<&'static str> = Vec::new();
    for (i, value) in fetch.iter().enumerate() {
        let Value::String(name) = value else {
            return Err(format!(
                "fetch[{i}] must be a variable name, found {}",
                kind(value)
            ));
        };
        let Some(known) = FETCH_VARS.iter().find(|known| **known == name.as_str()) else {
            return Err(format!(
                "fetch[{i}] names unknown variable `{name}`: the model's fetch variables are {}",
                FETCH_VARS.join(", ")
            ));
        };
        if !names.contains(known) {
            names.push(known);
        }
    }
    Ok(names)
}

/// What kind of JSON value this is, for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: [f64; FEATURES] = [
        0.0137, -0.1136, 0.2553, -0.0692, 0.0582, -0.0727, -0.1583, -0.0584, 0.6283, 0.4919,
        0.1856, 0.0795, -0.0332,
    ];

    #[test]
    fn seed_request_prices_near_paddles_answer() {
        let price = predict(&SEED);
        assert!((price - 18.90).abs() < 0.01, "{price}");
    }

    #[test]
    fn parses_several_rows_and_dedups_fetch() {
        const ZEROS: [f64; FEATURES] = [0.0; FEATURES];
        let body = serde_json::json!({
            "feed": [{"x": SEED}, {"x": ZEROS}],
            "fetch": ["price", "price"],
        });
        let request = Request::parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(request.rows, vec![SEED, [0.0; FEATURES]]);
        assert_eq!(request.fetch, vec!["price"]);
        let answer = request.answer().unwrap();
        assert_eq!(answer["price"][1][0], BIAS);
    }

    #[test]
    fn errors_name_the_problem() {
        let cases: &[(&str, &str)] = &[
            ("{", "not valid JSON"),
            ("[1]", "must be a JSON object"),
            (r#"{"fetch":["price"]}"#, "missing field `feed`"),
            (r#"{"feed":{},"fetch":["price"]}"#, "`feed` must be a list"),
            (r#"{"feed":[],"fetch":["price"]}"#, "`feed` is empty"),
            (
                r#"{"feed":[1],"fetch":["price"]}"#,
                "feed[0] must be an object",
            ),
            (r#"{"feed":[{}],"fetch":["price"]}"#, "feed[0] has no `x`"),
            (
                r#"{"feed":[{"y":[]}],"fetch":["price"]}"#,
                "unknown feed variable `y`",
            ),
            (
                r#"{"feed":[{"x":"a"}],"fetch":["price"]}"#,
                "feed[0].x must be a list",
            ),
            (
                r#"{"feed":[{"x":[1,2]}],"fetch":["price"]}"#,
                "feed[0].x has 2 numbers",
            ),
            (
                r#"{"feed":[{"x":[0,0,0,0,0,0,0,0,0,0,0,0,0]},{"x":[0,0,0,0,0,0,0,"a",0,0,0,0,0]}],"fetch":["price"]}"#,
                "feed[1].x[7] is not a number, found a string",
            ),
            (
                r#"{"feed":[{"x":[0,0,0,0,0,0,0,0,0,0,0,0,0]}]}"#,
                "missing field `fetch`",
            ),
            (
                r#"{"feed":[{"x":[0,0,0,0,0,0,0,0,0,0,0,0,0]}],"fetch":[]}"#,
                "`fetch` is empty",
            ),
            (
                r#"{"feed":[{"x":[0,0,0,0,0,0,0,0,0,0,0,0,0]}],"fetch":"price"}"#,
                "`fetch` must be a list",
            ),
            (
                r#"{"feed":[{"x":[0,0,0,0,0,0,0,0,0,0,0,0,0]}],"fetch":["price","age"]}"#,
                "fetch[1] names unknown variable `age`",
            ),
        ];
        for (body, expected) in cases {
            let err = Request::parse(body.as_bytes()).unwrap_err();
            assert!(err.contains(expected), "{body}: {err}");
        }
    }

    #[test]
    fn overflowing_price_is_refused() {
        let body = r#"{"feed":[{"x":[1e308,0,0,0,0,0,0,0,0,0,0,0,0]}],"fetch":["price"]}"#;
        let request = Request::parse(body.as_bytes()).unwrap();
        assert!(request.answer().unwrap_err().contains("overflows"));
    }
}
