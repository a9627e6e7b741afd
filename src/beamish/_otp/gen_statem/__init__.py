"""GenStateMachine (gen_statem): states, timeouts and postponed events."""
