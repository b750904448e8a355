"""Mutual TLS between the kernel and a component: both present certificates their CA signed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from component_harness import Linked, link_to
from component_samples import IMBALANCE_SETTINGS, RecordingImbalance
from trading_stack import TradingStack

from kernel.adapters.base import RawFrame
from kernel.components import ComponentState
from kernel.service.config import ComponentSpec
from support.certs import make_certificates
from tradekernel_sdk.remote import server_credentials, start_server


def test_a_component_requiring_mutual_tls_trades_with_the_kernel_certificate_only(
    tmp_path: Path, btc_frames: list[RawFrame]
) -> None:
    certs = make_certificates(tmp_path / "pki")
    credentials = server_credentials(certs.server_cert, certs.server_key, certs.ca)
    stack = TradingStack(tmp_path / "journal.tkj")

    async def main() -> None:
        server, _, address = await start_server(RecordingImbalance, credentials=credentials)
        with_cert = link_to(
            stack,
            ComponentSpec(
                name="mtls",
                endpoint=address,
                settings=IMBALANCE_SETTINGS,
                tls_ca=certs.ca,
                tls_cert=certs.client_cert,
                tls_key=certs.client_key,
            ),
        )
        without_cert = link_to(
            stack, ComponentSpec(name="anonymous", endpoint=address, tls_ca=certs.ca)
        )
        plaintext = link_to(stack, ComponentSpec(name="plaintext", endpoint=address))
        links = (with_cert, without_cert, plaintext)
        try:
            for link in links:
                link.start()
            await with_cert.wait_up(10)
            await without_cert.first_attempt(10)
            await plaintext.first_attempt(10)
            assert without_cert.state is ComponentState.DOWN
            assert plaintext.state is ComponentState.DOWN
            await Linked(stack, with_cert, None).feed(btc_frames[:3000])
            assert any(order.strategy == "mtls" for order in stack.orders.orders.values())
        finally:
            for link in links:
                await link.stop()
            await server.stop(grace=0.5)
            stack.close()

    asyncio.run(main())
