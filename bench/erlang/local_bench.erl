%% The BEAM on the workloads of bench/runtime.py and bench/otp.py, on one node: the anchor
%% every kernel and OTP row is compared with. Run as
%%   erl +S N -noshell -pa DIR -eval 'local_bench:main(["pingpong", "1000000"])'
%% It prints "key value" lines, then halts.
-module(local_bench).
-export([main/1]).
-export([init/1, handle_call/3, handle_cast/2]).  % gen_server and supervisor callbacks

main(["spawn", N]) -> spawn_idle(list_to_integer(N));
main(["pingpong", N]) -> ping_pong(list_to_integer(N));
main(["fanin", S, M]) -> fan_in(list_to_integer(S), list_to_integer(M));
main(["ring", R, L]) -> ring(list_to_integer(R), list_to_integer(L));
main(["call", N, C]) -> call(list_to_integer(N), list_to_integer(C));
main(["restart", N]) -> restart(list_to_integer(N));
main(["supervised", N]) -> supervised(list_to_integer(N)).

now_us() -> erlang:monotonic_time(microsecond).

report(Pairs) ->
    [io:format("~s ~p~n", [K, V]) || {K, V} <- Pairs],
    halt().

%% -- spawn idle ------------------------------------------------------------------------------

%% Until all wait: the processes run in spawn order, so once the last one waits in its
%% receive, so do the others (checked on every 1,000th). No message is sent to say so, as
%% beamish's idle actors send none.
spawn_idle(N) ->
    erlang:garbage_collect(),
    Before = erlang:memory(processes),
    T0 = now_us(),
    Pids = [spawn(fun idle/0) || _ <- lists:seq(1, N)],
    wait_waiting(lists:last(Pids)),
    T1 = now_us(),
    After = erlang:memory(processes),
    [wait_waiting(P) || {I, P} <- lists:zip(lists:seq(1, N), Pids), I rem 1000 =:= 0],
    report([{"seconds", (T1 - T0) / 1.0e6}, {"bytes_per_process", (After - Before) / N},
            {"count", length(Pids)}]).

idle() -> receive stop -> ok end.

wait_waiting(Pid) ->
    case erlang:process_info(Pid, status) of
        {status, waiting} -> ok;
        _ -> erlang:yield(), wait_waiting(Pid)
    end.

%% -- ping-pong ------------------------------------------------------------------------------

pong() -> receive {From, ping} -> From ! pong, pong(); stop -> ok end.

ping(_, 0) -> ok;
ping(Pong, N) -> Pong ! {self(), ping}, receive pong -> ping(Pong, N - 1) end.

ping_pong(N) ->
    Pong = spawn(fun pong/0),
    ping(Pong, 10000),  % warm up
    T0 = now_us(),
    ping(Pong, N),
    T1 = now_us(),
    report([{"rate", N * 1.0e6 / (T1 - T0)}]).

%% -- fan-in ----------------------------------------------------------------------------------

sink(0, From) -> From ! done;
sink(N, From) -> receive {msg, _} -> sink(N - 1, From) end.

send_n(_, 0) -> ok;
send_n(Dest, N) -> Dest ! {msg, N}, send_n(Dest, N - 1).

fan_in(S, M) ->
    Self = self(),
    Sink = spawn(fun() -> sink(S * M, Self) end),
    T0 = now_us(),
    [spawn(fun() -> send_n(Sink, M) end) || _ <- lists:seq(1, S)],
    receive done -> ok end,
    T1 = now_us(),
    report([{"rate", S * M * 1.0e6 / (T1 - T0)}]).

%% -- ring ------------------------------------------------------------------------------------

ring_node(Next, Owner) ->
    receive
        {link, First} -> ring_node(First, Owner);
        {token, 0} -> Owner ! done, ring_node(Next, Owner);
        {token, N} -> Next ! {token, N - 1}, ring_node(Next, Owner)
    end.

ring(R, L) ->
    Self = self(),
    T0 = now_us(),
    Last = spawn(fun() -> ring_node(none, Self) end),
    First = lists:foldl(fun(_, Next) -> spawn(fun() -> ring_node(Next, Self) end) end,
                        Last, lists:seq(1, R - 1)),
    Last ! {link, First},
    T1 = now_us(),
    Hops = R * L,
    First ! {token, Hops - 1},
    receive done -> ok end,
    T2 = now_us(),
    report([{"rate", Hops * 1.0e6 / (T2 - T1)}, {"build_seconds", (T1 - T0) / 1.0e6}]).

%% -- gen_server and supervisor (one callback module: init/1 tells them apart) ---------------

init({echo, N}) -> {ok, N};
init({crashy, Report}) -> Report ! {up, self(), now_us()}, {ok, Report};
init({idle}) -> {ok, none};
init({sup, one_for_one, Report}) ->
    {ok, {#{strategy => one_for_one, intensity => 1000000, period => 3600},
          [#{id => crashy, start => {gen_server, start_link, [?MODULE, {crashy, Report}, []]}}]}};
init({sup, dynamic}) ->
    {ok, {#{strategy => simple_one_for_one},
          [#{id => idle, start => {gen_server, start_link, [?MODULE, {idle}, []]}}]}}.

handle_call(Request, _From, N) -> {reply, Request, N}.
handle_cast(crash, S) -> {stop, crash, S}.

calls(_, 0) -> ok;
calls(Server, N) -> gen_server:call(Server, N), calls(Server, N - 1).

call(N, Callers) ->
    {ok, Server} = gen_server:start_link(?MODULE, {echo, 0}, []),
    calls(Server, 10000),  % warm up
    Self = self(),
    Each = N div Callers,
    T0 = now_us(),
    [spawn_link(fun() -> calls(Server, Each), Self ! done end) || _ <- lists:seq(1, Callers)],
    [receive done -> ok end || _ <- lists:seq(1, Callers)],
    T1 = now_us(),
    report([{"rate", Each * Callers * 1.0e6 / (T1 - T0)}]).

restart(N) ->
    process_flag(trap_exit, true),
    logger:set_primary_config(level, none),  % N crash reports otherwise
    {ok, _Sup} = supervisor:start_link(?MODULE, {sup, one_for_one, self()}),
    First = receive {up, P, _} -> P end,
    Latencies = lists:sort(crash_loop(First, N, [])),
    report([{"p50", lists:nth(N div 2 + 1, Latencies) / 1.0e6},
            {"p99", lists:nth(trunc(N * 0.99) + 1, Latencies) / 1.0e6},
            {"max", lists:last(Latencies) / 1.0e6}]).

crash_loop(_, 0, Acc) -> Acc;
crash_loop(Pid, N, Acc) ->
    T0 = now_us(),
    gen_server:cast(Pid, crash),
    receive {up, New, T1} -> crash_loop(New, N - 1, [T1 - T0 | Acc]) end.

supervised(N) ->
    {ok, Sup} = supervisor:start_link(?MODULE, {sup, dynamic}),
    {ok, _} = supervisor:start_child(Sup, []),  % warm up
    erlang:garbage_collect(),
    Before = erlang:memory(processes),
    T0 = now_us(),
    [{ok, _} = supervisor:start_child(Sup, []) || _ <- lists:seq(1, N)],
    T1 = now_us(),
    After = erlang:memory(processes),
    report([{"seconds", (T1 - T0) / 1.0e6}, {"bytes_per_server", (After - Before) / N}]).
