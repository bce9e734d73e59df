"""A strategy's net price is banded against the net of its legs' mids, with the code single
orders get (`price_outside_band`, README "Risk")."""

from __future__ import annotations

from pathlib import Path

from tests.api.test_internal_book import C3000, C3200, A, app_client, spread
from tests.api.test_orders_api import assert_error, runtime
from tests.market_making import make_market


def test_a_strategy_far_from_its_legs_mids_is_refused_like_a_single_order(
    tmp_path: Path,
) -> None:
    with app_client(tmp_path) as client:
        rt = runtime(client)
        for instrument, bid, ask in ((C3000, "300", "310"), (C3200, "200", "210")):
            client.portal.call(make_market, rt, instrument, bid, ask, "5")  # type: ignore[union-attr]
        # mids 305 and 205: the spread's net mid is 100, the option band 50% of 305 + 205
        refused = client.post("/v1/strategies", json=spread(A, "s1", "buy", "355.5"))
        assert_error(refused, 422, "price_outside_band", "price")
        assert "100" in refused.json()["error"]["message"]
        single = client.post(
            "/v1/orders",
            json={
                "account": A,
                "client_order_id": "o1",
                "instrument": C3000,
                "side": "buy",
                "quantity": "1",
                "price": "458",  # 305 + 50%
            },
        )
        assert_error(single, 422, "price_outside_band", "price")
        # nothing was written for either
        assert client.get("/v1/orders", params={"account": A}).json()["items"] == []

        # within the band it is accepted (and here takes the legs' books at 310 - 200)
        accepted = client.post("/v1/strategies", json=spread(A, "s2", "buy", "355"))
        assert accepted.status_code == 201, accepted.text
        assert accepted.json()["average_price"] == "110"
        # a sell far below the net mid is refused the same way; far above, it just rests
        low = client.post("/v1/strategies", json=spread(A, "s3", "sell", "-155.5"))
        assert_error(low, 422, "price_outside_band", "price")
        high = client.post("/v1/strategies", json=spread(A, "s4", "sell", "400"))
        assert high.status_code == 201 and high.json()["status"] == "accepted", high.text
