"""Seeds a running eventgate for the contract run and prints a client key.

Waits for /readyz, saves GET /catalogue to CATALOGUE_FILE, then as the platform creates
tenant `acme`, a client key and portfolio `P1` (so the feed has events), and as the
client makes one deposit.
Usage: contract_seed.py BASE_URL PLATFORM_KEY CATALOGUE_FILE
"""

import json
import sys
import time
import urllib.error
import urllib.request


def call(base, method, path, key=None, body=None, headers=None):
    request = urllib.request.Request(base + path, method=method)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, data, timeout=30) as response:
        return json.loads(response.read() or b"null")


def wait_ready(base, seconds=180):
    deadline = time.monotonic() + seconds
    while True:
        try:
            call(base, "GET", "/readyz")
            return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                sys.exit(f"eventgate at {base} did not become ready in {seconds}s")
            time.sleep(0.5)


def main():
    base, platform, catalogue_file = sys.argv[1], sys.argv[2], sys.argv[3]
    wait_ready(base)
    with open(catalogue_file, "w") as out:
        json.dump(call(base, "GET", "/catalogue"), out)
    call(base, "POST", "/platform/tenants", platform, {"id": "acme", "name": "Acme Bank"})
    key = call(base, "POST", "/platform/tenants/acme/keys", platform, {"role": "client"})["key"]
    call(base, "POST", "/platform/events", platform, {
        "tenant": "acme", "subject": "portfolios", "action": "creation",
        "data": {"id": "P1", "external_id": "ext-P1", "owned_by_user_id": "U1"},
    })
    call(base, "POST", "/events/deposit/", key,
         {"data": {"amount": "100.00", "currency": "USD", "portfolio": "P1"}},
         {"Idempotency-Key": "seed-deposit-1"})
    print(key)


if __name__ == "__main__":
    main()
