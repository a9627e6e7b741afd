%% Distributed Erlang between two local nodes: the anchor of bench/cluster.py.
%% Node B runs serve/0 (an echo and a sink, registered); node A runs run/1, which prints
%% "pingpong <round trips/s>" and "fanin <messages/s>" lines, then halts.
-module(dist_bench).
-export([serve/0, run/1]).

serve() ->
    register(echo, spawn(fun echo/0)),
    register(sink, spawn(fun sink/0)),
    receive stop -> ok end.

echo() ->
    receive {From, Msg} -> From ! Msg, echo() end.

sink() ->
    receive {expect, Total, From} -> count(Total, From), sink() end.

count(0, From) -> From ! done;
count(N, From) -> receive {msg, _} -> count(N - 1, From) end.

run([NodeStr, RoundsStr, SendersStr, MsgsStr]) ->
    Node = list_to_atom(NodeStr),
    Rounds = list_to_integer(RoundsStr),
    Senders = list_to_integer(SendersStr),
    Msgs = list_to_integer(MsgsStr),
    pong = net_adm:ping(Node),
    timer:sleep(200),
    ping_pong(Node, 1000),  % warm up
    T0 = erlang:monotonic_time(microsecond),
    ping_pong(Node, Rounds),
    T1 = erlang:monotonic_time(microsecond),
    io:format("pingpong ~p~n", [Rounds * 1000000 / (T1 - T0)]),
    Total = Senders * Msgs,
    {sink, Node} ! {expect, Total, self()},
    T2 = erlang:monotonic_time(microsecond),
    Self = self(),
    [spawn(fun() -> send_n({sink, Node}, Msgs), Self ! sent end) || _ <- lists:seq(1, Senders)],
    receive done -> ok end,
    T3 = erlang:monotonic_time(microsecond),
    io:format("fanin ~p~n", [Total * 1000000 / (T3 - T2)]),
    halt().

ping_pong(_, 0) -> ok;
ping_pong(Node, N) ->
    {echo, Node} ! {self(), ping},
    receive ping -> ping_pong(Node, N - 1) end.

send_n(_, 0) -> ok;
send_n(Dest, N) -> Dest ! {msg, N}, send_n(Dest, N - 1).
