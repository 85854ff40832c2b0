# The seed's prediction request and route, shared by the benchmark scripts (bench-load.sh,
# count-instructions.sh), which source this file: the key, the instance header, the body, the wrk
# script that sends it, and the three plugins' TOML.
# shellcheck shell=bash disable=SC2034

KEY=hP6v25BQVS5CcS1nqKpxdrFkUxze9JWD
KEY_SHA256=dceb76cf5cd7ce48e83deebd5db793e68fbc7ffbf9796569e38ede2e7e28aa70
INSTANCE=kong_ins
SEED_PATH=/serving-uci/uci/prediction
BODY='{"feed":[{"x":[0.0137,-0.1136,0.2553,-0.0692,0.0582,-0.0727,-0.1583,-0.0235,-0.0254,-0.0136,0.0085,0.0209,0.0087]}],"fetch":["price"]}'

# wrk's script for the seed request.
seed_lua() {
    cat <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["apikey"] = "$KEY"
wrk.headers["X-INSTANCE-ID"] = "$INSTANCE"
LUA
}

# The seed route's plugin chain, as `[[routes.plugins]]` tables of a wasmgate config.
seed_plugins_toml() {
    cat <<TOML

[[routes.plugins]]
name = "key-auth"
[routes.plugins.config]
consumers = [{ username = "demo", key_sha256 = ["$KEY_SHA256"] }]

[[routes.plugins]]
name = "instance-header"
[routes.plugins.config]
values = ["$INSTANCE"]

[[routes.plugins]]
name = "path-rewrite"
[routes.plugins.config]
prefix = "/serving-uci"
TOML
}
