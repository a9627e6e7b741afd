"""ConcurrencyExample, from the seed: ten processes, each running its task on its own.

The Elixir original::

    defmodule ConcurrencyExample do
      def start_processes do
        for i <- 1..10 do
          spawn(fn -> process_task(i) end)
        end
      end

      defp process_task(i) do
        IO.puts("Process #{i} is running")
        :timer.sleep(1000)
        IO.puts("Process #{i} has finished")
      end
    end

    ConcurrencyExample.start_processes()

The ten sleeps overlap: the program takes about one second, not ten. Elixir's shell stays
up after `start_processes`; a Python program ends when `main` returns, so `main` waits for
the ten processes to exit.
"""

import beamish
from beamish import spawn


def start_processes() -> list[beamish.Pid]:
    return [spawn(_process_task, i) for i in range(1, 11)]


async def _process_task(i: int) -> None:
    print(f"Process {i} is running")
    await beamish.sleep(1)
    print(f"Process {i} has finished")


async def main() -> None:
    for pid in start_processes():
        await beamish.wait_exit(pid)


if __name__ == "__main__":
    beamish.run(main)
