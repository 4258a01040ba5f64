"""The demo bot: a simulated market, an ensemble of ML agents and a strategy, fully instrumented."""
