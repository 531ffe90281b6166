"""The contract, on the memory broker (virtual time: instant)."""

from broker_contract import BrokerContract


class TestMemoryBroker(BrokerContract):
    backend = "memory"
    virtual = True
