"""A command tool: counts the words of a text (lacre SPEC §9.2).

Reads the argument object on stdin, prints the result object on stdout.
"""
import json
import sys

args = json.load(sys.stdin)
words = args["text"].split()
json.dump({"words": len(words), "text": args["text"]}, sys.stdout, ensure_ascii=False)
