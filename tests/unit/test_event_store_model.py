"""Hypothesis drives the event store, the order aggregate and the projection against a model.

The model is a dict: order id -> (user, status, items) and the number of events per stream.
Rules create orders, add items, change status, append with a stale expected version (must
conflict and write nothing), take snapshots, and rebuild the read model. After every step the
store, every way of loading an order, and the projection agree with the model.
"""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from labkit.patterns.cqrs import OrderProjection
from labkit.patterns.event_sourcing import TRANSITIONS, OrderRepository, stream_of
from labkit.patterns.event_store import EventStore, NewEvent, WrongExpectedVersion
from labkit.patterns.order_commands import OrderService


class EventStoreMachine(RuleBasedStateMachine):
    orders = Bundle("orders")

    def __init__(self):
        super().__init__()
        self.store = EventStore()
        self.repo = OrderRepository(self.store, snapshot_every=4)
        self.svc = OrderService(self.repo)
        self.projection = OrderProjection()
        self.model: dict[str, dict] = {}
        self.conflicts = 0

    @rule(target=orders, user=st.sampled_from(["u1", "u2", "u3"]))
    def create(self, user):
        oid = f"o{len(self.model)}"
        self.svc.create_order(user, oid)
        self.model[oid] = {"user": user, "status": "created", "items": [], "version": 1}
        return oid

    @rule(
        oid=orders,
        qty=st.integers(1, 9),
        price=st.sampled_from([0.1, 0.25, 1.0, 9.99]),
    )
    def add_item(self, oid, qty, price):
        m = self.model[oid]
        if m["status"] != "created":
            return
        self.svc.add_item(oid, "p", qty, price)
        m["items"].append(round(qty * price, 2))
        m["version"] += 1

    @rule(oid=orders, status=st.sampled_from(["paid", "shipped", "delivered", "cancelled"]))
    def change_status(self, oid, status):
        m = self.model[oid]
        if status not in TRANSITIONS[m["status"]]:
            return
        self.svc.change_status(oid, status)
        m["status"] = status
        m["version"] += 1

    @rule(oid=orders, behind=st.integers(1, 3))
    def stale_writer(self, oid, behind):
        m = self.model[oid]
        expected = max(0, m["version"] - behind)
        try:
            self.store.append(stream_of(oid), [NewEvent("Noise", {})], expected=expected)
        except WrongExpectedVersion as exc:
            assert exc.actual == m["version"]
            self.conflicts += 1
        else:
            raise AssertionError("a stale expected version was accepted")

    @rule(oid=orders)
    def retry_last_append(self, oid):
        """A writer whose reply got lost sends its last batch again: stored once."""
        last = self.store.read_stream(stream_of(oid))[-1]
        again = NewEvent(last.type, last.data, id=last.id, schema=last.schema)
        head = self.store.head()
        result = self.store.append(stream_of(oid), [again], expected=last.version - 1)
        assert result.duplicate and result.last_version == last.version
        assert self.store.head() == head

    @rule(oid=orders)
    def snapshot(self, oid):
        order = self.repo.load(oid)
        self.store.save_snapshot(stream_of(oid), order.version, order.to_dict())

    @rule(batch=st.integers(1, 5))
    def project(self, batch):
        self.projection.catch_up(self.store, batch_size=batch)

    @rule()
    def rebuild(self):
        self.projection.catch_up(self.store)
        incremental = self.projection.dump()
        self.projection.rebuild(self.store)
        assert self.projection.dump() == incremental

    @invariant()
    def store_and_aggregate_agree_with_model(self):
        assert self.store.conflicts == self.conflicts
        assert self.store.head() == sum(m["version"] for m in self.model.values())
        for oid, m in self.model.items():
            loaded, replayed = self.repo.load(oid), self.repo.replay(oid)
            assert loaded == replayed
            assert (loaded.user_id, loaded.status, loaded.version) == (
                m["user"],
                m["status"],
                m["version"],
            )
            assert loaded.total == round(sum(m["items"]), 2)

    @invariant()
    def projection_never_runs_ahead_and_matches_when_caught_up(self):
        assert self.projection.checkpoint <= self.store.head()
        if self.projection.lag(self.store) == 0:
            for oid, m in self.model.items():
                row = self.projection.get_order(oid)
                assert (row["status"], row["version"]) == (m["status"], m["version"])
                assert row["total"] == round(sum(m["items"]), 2)


TestEventStoreMachine = EventStoreMachine.TestCase
TestEventStoreMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
