"""The README walkthrough, run with a client generated from openapi.yaml.

It proves the document works for code generation: every call below goes through the
generated functions and models, and every answer is parsed into them. Usage:
walkthrough.py BASE_URL PLATFORM_KEY (with the generated `eventgate_client` importable).
"""

import sys
import uuid

from eventgate_client import AuthenticatedClient
from eventgate_client.api.client import create_deposit, get_deposit, list_events
from eventgate_client.api.destinations import create_destination, delete_destination, get_destination
from eventgate_client.api.platform import create_key, create_tenant, publish_event
from eventgate_client.models import (
    Deposit,
    DepositRequest,
    DepositWith2Decimals,
    DepositWith2DecimalsCurrency,
    FeedPage,
    NewAmqpDestination,
    NewKeyRequest,
    NewTenant,
    PortfoliosCreationData,
    PublishPortfoliosCreation,
    Role,
)


def check(condition, what):
    if not condition:
        sys.exit(f"walkthrough failed: {what}")
    print(f"ok: {what}")


def main():
    base, platform_key = sys.argv[1], sys.argv[2]
    # Long-polls may hold an answer up to 30 s: the client waits longer than that.
    platform = AuthenticatedClient(base_url=base, token=platform_key, timeout=40.0)
    tenant = f"walk-{uuid.uuid4().hex[:12]}"

    created = create_tenant.sync_detailed(client=platform, body=NewTenant(id=tenant, name="Walkthrough Bank"))
    check(created.status_code == 201, f"tenant {tenant} created")
    key = create_key.sync(client=platform, tenant=tenant, body=NewKeyRequest(role=Role.CLIENT))
    check(key.key.startswith("egk_"), "a client key, shown once")
    client = AuthenticatedClient(base_url=base, token=key.key, timeout=40.0)

    portfolio = "P01F8ZSNV0J45R9DFZ3D7D8C26F"
    published = publish_event.sync_detailed(
        client=platform,
        body=PublishPortfoliosCreation(
            tenant=tenant,
            subject="portfolios",
            action="creation",
            data=PortfoliosCreationData.from_dict(
                {"id": portfolio, "external_id": "an-external-id", "owned_by_user_id": "a-user-id"}
            ),
        ),
    )
    check(published.status_code == 201, "the platform published portfolios.creation")

    deposit = DepositRequest(
        data=DepositWith2Decimals(amount="1000", currency=DepositWith2DecimalsCurrency.USD, portfolio=portfolio)
    )
    first = create_deposit.sync_detailed(client=client, body=deposit, idempotency_key='"LVRYWG833Vp2FIIG"')
    check(first.status_code == 201 and isinstance(first.parsed, Deposit), "deposit created")
    again = create_deposit.sync_detailed(client=client, body=deposit, idempotency_key='"LVRYWG833Vp2FIIG"')
    check(
        again.status_code == 201 and again.headers.get("idempotent-replayed") == "true",
        "the retry with the same Idempotency-Key replays the first answer",
    )
    check(again.parsed.id == first.parsed.id, "one deposit, not two")
    read = get_deposit.sync(client=client, id=first.parsed.id)
    check(read.amount == "1000", "the deposit reads back")

    seen = []
    page = list_events.sync(client=client, limit=1)
    while True:
        check(isinstance(page, FeedPage), "a feed page")
        seen.extend(event.to_dict()["subject"] + "." + event.to_dict()["action"] for event in page.data)
        if not page.data:
            break
        page = list_events.sync(client=client, after=page.next_cursor, limit=1)
    check(seen == ["portfolios.creation", "portfolios.funding"], f"the feed, followed to its end: {seen}")

    destination = create_destination.sync_detailed(
        client=client,
        body=NewAmqpDestination(kind="amqp", url="amqp://guest:guest@127.0.0.1:5672/%2f", exchange=f"{tenant}.events"),
    )
    check(destination.status_code == 201, "an AMQP destination created")
    shown = get_destination.sync(client=client, id=destination.parsed.id)
    check("***" in shown.to_dict()["url"], "its password is never shown")
    deleted = delete_destination.sync_detailed(client=client, id=destination.parsed.id)
    check(deleted.status_code == 204, "and deleted")


if __name__ == "__main__":
    main()
