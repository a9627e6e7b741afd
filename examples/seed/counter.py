"""Counter, from the seed: a GenServer that keeps a number.

The Elixir original::

    defmodule Counter do
      use GenServer

      # Client API
      def start_link(initial_value) do
        GenServer.start_link(__MODULE__, initial_value, name: __MODULE__)
      end

      def increment do
        GenServer.cast(__MODULE__, :increment)
      end

      def get_value do
        GenServer.call(__MODULE__, :get_value)
      end

      # Server Callbacks
      def init(initial_value) do
        {:ok, initial_value}
      end

      def handle_cast(:increment, state) do
        {:noreply, state + 1}
      end

      def handle_call(:get_value, _from, state) do
        {:reply, state, state}
      end
    end

    {:ok, _} = Counter.start_link(0)
    Counter.increment()
    IO.puts("Counter value: #{Counter.get_value()}")

Atoms are strings, ``__MODULE__`` as a name is the class's name, and the pattern in each
callback's head becomes a ``match`` statement.
"""

from typing import Any

import beamish
from beamish import GenServer, NoReply, Ok, Pid, Reply


class Counter(GenServer):
    # Client API
    @classmethod
    async def start_link(cls, initial_value: int) -> Pid:
        return await super().start_link(initial_value, name=cls.__name__)

    @classmethod
    def increment(cls) -> None:
        GenServer.cast(cls.__name__, "increment")

    @classmethod
    async def get_value(cls) -> int:
        return await GenServer.call(cls.__name__, "get_value")

    # Server Callbacks
    def init(self, initial_value: int) -> Ok:
        return Ok(initial_value)

    def handle_cast(self, request: Any, state: int):
        match request:
            case "increment":
                return NoReply(state + 1)

    def handle_call(self, request: Any, from_: Any, state: int):
        match request:
            case "get_value":
                return Reply(state, state)


async def main() -> None:
    await Counter.start_link(0)
    Counter.increment()
    print(f"Counter value: {await Counter.get_value()}")


if __name__ == "__main__":
    beamish.run(main)
