"""A command tool for lacre: counts the words of a text.

lacre writes the argument object on stdin; the result object goes to stdout.
"""
import json
import sys

args = json.load(sys.stdin)
json.dump({"words": len(args["text"].split())}, sys.stdout)
