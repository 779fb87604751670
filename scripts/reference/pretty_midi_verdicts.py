"""Which of the files listed in DIR/cases.txt pretty_midi reads.

Prints `NAME true|false` per case: true when `pretty_midi.PrettyMIDI(path)`
returns without an exception. Used by scripts/fuzz.sh.
"""
import multiprocessing
import os
import sys
import warnings


def verdict(path):
    warnings.simplefilter("ignore")
    import pretty_midi

    try:
        pretty_midi.PrettyMIDI(path)
        return True
    except Exception:
        return False


def main():
    folder = sys.argv[1]
    with open(os.path.join(folder, "cases.txt")) as f:
        names = [line.split()[0] for line in f if line.strip()]
    with multiprocessing.Pool(int(sys.argv[2]) if len(sys.argv) > 2 else 2) as pool:
        results = pool.map(verdict, [os.path.join(folder, n) for n in names], chunksize=64)
    for name, ok in zip(names, results):
        print(name, "true" if ok else "false")


if __name__ == "__main__":
    main()
