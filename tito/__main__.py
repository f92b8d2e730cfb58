from tito.cli import main

if __name__ == "__main__":   # spawned grading workers import this module; they must not run the CLI
    main()
