"""Hypothesis drives the memory broker (publish, ack, nack, reject, crash, time) against a model.

After every step the broker and a small model agree on where each message is (waiting,
handed out, acked, dead), and the accounting holds: published = acked + dead-lettered +
still queued, so nothing is ever lost.
"""

import asyncio

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from labkit.core.accounting import message_accounting
from labkit.core.clock import LoopClock, VirtualTimeLoop
from labkit.core.timeline import Timeline
from labkit.transport.brokers import QueueSpec
from labkit.transport.brokers.memory import MemoryBroker

LIMIT, ACK_WAIT, PREFETCH = 3, 10.0, 2


class MemoryBrokerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.loop = VirtualTimeLoop()
        self.held = []  # deliveries handed to the consumer, not yet settled by a rule
        self.model = {}  # id -> {"state": ready|held|acked|dead, "deliveries": n}

        async def setup():
            self.timeline = Timeline(LoopClock())
            self.broker = MemoryBroker(timeline=self.timeline)
            await self.broker.declare(
                QueueSpec("q", ("orders.created",), max_deliveries=LIMIT, ack_wait_s=ACK_WAIT)
            )
            self.consumer = await self.broker.consume("q", self._hold, prefetch=PREFETCH)

        self.run(setup())

    def run(self, coro):
        result = self.loop.run_until_complete(coro)
        self.loop.run_until_complete(asyncio.sleep(0))  # let handler tasks take their deliveries
        return result

    async def _hold(self, delivery):
        self.held.append(delivery)

    def teardown(self):
        self.loop.close()

    # -- the model's view of a delivery -------------------------------------------------------
    def _model_deliver_all(self):
        """Mirror the broker's dispatch: hand out ready messages, oldest-requeued first."""
        for d in self.held:
            entry = self.model[d.message.id]
            if entry["state"] != "held":
                entry["state"] = "held"
                entry["deliveries"] = d.delivery_count
        # messages that hit the limit were dead-lettered instead of delivered
        for letter in self.loop.run_until_complete(self.broker.dead_letters("q")):
            self.model[letter.message.id]["state"] = "dead"

    @rule()
    def publish(self):
        mid = self.run(self.broker.publish("orders.created", {"n": len(self.model)}))
        self.model[mid] = {"state": "ready", "deliveries": 0}
        self._model_deliver_all()

    def _take(self, i):
        d = self.held.pop(i % len(self.held))
        return d

    @precondition(lambda self: self.held)
    @rule(i=st.integers(0, 10))
    def ack(self, i):
        d = self._take(i)
        self.run(d.ack())
        if not d.settled or self.model[d.message.id]["state"] == "held":
            self.model[d.message.id]["state"] = "acked"
        self._model_deliver_all()

    @precondition(lambda self: self.held)
    @rule(i=st.integers(0, 10))
    def nack(self, i):
        d = self._take(i)
        self.run(d.nack(requeue=True))
        self.model[d.message.id]["state"] = "ready"
        self._model_deliver_all()

    @precondition(lambda self: self.held)
    @rule(i=st.integers(0, 10))
    def reject(self, i):
        d = self._take(i)
        self.run(d.reject())
        self.model[d.message.id]["state"] = "dead"
        self._model_deliver_all()

    @rule()
    def crash(self):
        for d in self.held:
            self.model[d.message.id]["state"] = "ready"
        self.held.clear()
        self.run(self.consumer.stop(crash=True))
        self.consumer = self.run(self.broker.consume("q", self._hold, prefetch=PREFETCH))
        self._model_deliver_all()

    @rule(seconds=st.sampled_from([1.0, 5.0, ACK_WAIT + 1]))
    def wait(self, seconds):
        self.run(asyncio.sleep(seconds))
        # deliveries past their ack wait went back and may have been handed out again
        live = {id(d) for d in self.held if not d.settled and d._queue.in_flight.get(d.tag) is d}
        for d in [d for d in self.held if id(d) not in live]:
            self.held.remove(d)
            if self.model[d.message.id]["state"] == "held":
                self.model[d.message.id]["state"] = "ready"
        self._model_deliver_all()

    # -- what must always hold -----------------------------------------------------------------
    @invariant()
    def nothing_is_lost(self):
        depth = self.loop.run_until_complete(self.broker.depth("q"))
        in_flight = len(self.broker._queues["q"].in_flight)
        acc = message_accounting(self.timeline, still_queued=depth + in_flight)
        assert acc["published"] == len(self.model)
        assert acc["lost"] == 0

    @invariant()
    def broker_and_model_agree(self):
        states = [e["state"] for e in self.model.values()]
        depth = self.loop.run_until_complete(self.broker.depth("q"))
        assert depth == states.count("ready")
        assert len(self.held) == states.count("held") <= PREFETCH
        letters = self.loop.run_until_complete(self.broker.dead_letters("q"))
        assert len(letters) == states.count("dead")
        assert all(d.delivery_count <= LIMIT for d in self.held)


TestMemoryBroker = MemoryBrokerMachine.TestCase
TestMemoryBroker.settings = settings(max_examples=120, stateful_step_count=40, deadline=None)
